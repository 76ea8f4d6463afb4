// What the build leaves for start-up speed (scripts/bundle.mjs, bin/enroot): code caches V8 accepts, and
// commands that do not load what they do not use. A regression here breaks nothing visible, it only
// makes every start slower, so it is checked here rather than noticed in bench/start.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { closeSync, existsSync, openSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ENROOT, REPO, enrootEnv, requireFeature, userTmp, IS_ROOT, testUser } from './helpers/env.js'
import { registryAvailable, startRegistry } from './helpers/registry.js'
import { busyboxImage, pushLayout, writeOciLayout } from './helpers/oci-image.js'

const BUNDLE = join(REPO, 'dist', 'enroot.cjs')
const built = existsSync(BUNDLE)

// bin/enroot's check, in a fresh process: does V8 take the cache for these bytes?
const CHECK = `const { readFileSync } = require('node:fs'); const vm = require('node:vm')
const [file, cache] = process.argv.slice(1)
const source = readFileSync(file, 'utf8')
const head = Buffer.from(source.slice(0, source.indexOf('\\n') + 1))
const c = readFileSync(cache)
if (!c.subarray(0, head.length).equals(head)) { console.log('other bytes'); process.exit(0) }
const s = new vm.Script(require('node:module').wrap(source), { filename: file, cachedData: c.subarray(head.length) })
console.log(s.cachedDataRejected ? 'rejected' : 'accepted')`

for (const cache of ['enroot.cjs.cache', 'enroot.cjs.net.cache']) {
  t.test(`V8 accepts ${cache} for the bundle it was trained on`, async t => {
    if (!requireFeature(t, 'a built launcher', built, 'run npm run build')) return
    const r = spawnSync('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, '-e', CHECK, BUNDLE, join(REPO, 'dist', cache)], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } })
    t.equal(r.stdout.trim(), 'accepted', r.stderr)
  })
}

t.test('version, list and a failing start load no registry client, HTTP or child_process module', async t => {
  if (!requireFeature(t, 'a built launcher', built, 'run npm run build')) return
  const dir = userTmp(t)
  const env = enrootEnv(dir)
  const record = join(dir, 'modules.cjs')
  // run as a preload: at exit it writes the Node modules this process loaded
  writeFileSync(record, "process.on('exit', () => require('node:fs').writeFileSync(process.env.RECORD, process.moduleLoadList.join('\\n')))\n")
  const u = IS_ROOT ? testUser() : undefined
  for (const args of [['version'], ['list'], ['start', 'no-such-container', 'true']]) {
    const out = join(dir, `${args[0] as string}.txt`)
    // output to a file: Node's own stdio on a pipe would load net itself
    const log = openSync(join(dir, `${args[0] as string}.log`), 'w')
    try {
      // env -u: tap puts its own NODE_OPTIONS (and modules) back into a child's environment
      spawnSync('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, '--require', record, ENROOT, ...args], {
        env: { ...env, RECORD: out }, stdio: ['ignore', log, log], ...(u !== undefined ? { uid: u.uid, gid: u.gid } : {})
      })
    } finally { closeSync(log) }
    const loaded = readFileSync(out, 'utf8').split('\n')
    for (const m of ['NativeModule http2', 'NativeModule net', 'NativeModule child_process', 'NativeModule fs/promises']) {
      t.notOk(loaded.includes(m), `${args.join(' ')}: no ${m.slice('NativeModule '.length)}`)
    }
  }
})

t.test('digest, the registry client at its leanest, loads no HTTP client or server, assert, child_process or timers/promises', async t => {
  if (!requireFeature(t, 'a built launcher', built, 'run npm run build')) return
  const avail = registryAvailable()
  if (!requireFeature(t, 'registry', avail.ok, avail.why)) return
  const dir = userTmp(t)
  const reg = await startRegistry({ dir: join(dir, 'registry') })
  t.teardown(reg.stop)
  await pushLayout(writeOciLayout(join(dir, 'bb'), 'v1', busyboxImage()), reg, 'bb:1')
  const record = join(dir, 'modules.cjs')
  writeFileSync(record, "process.on('exit', () => require('node:fs').writeFileSync(process.env.RECORD, process.moduleLoadList.join('\\n')))\n")
  const out = join(dir, 'digest.txt')
  const log = openSync(join(dir, 'digest.log'), 'w')
  const u = IS_ROOT ? testUser() : undefined
  let status: number | null
  try {
    // env -u as above; undici's node:http and node:assert are replaced in the bundle (scripts/bundle.mjs)
    status = spawnSync('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, '--require', record, ENROOT, 'digest', `docker://${reg.host}#bb:1`], {
      env: { ...enrootEnv(dir, { ENROOT_ALLOW_HTTP: 'y' }), RECORD: out }, stdio: ['ignore', log, log], ...(u !== undefined ? { uid: u.uid, gid: u.gid } : {})
    }).status
  } finally { closeSync(log) }
  t.equal(status, 0, status === 0 ? 'digest exits 0' : readFileSync(join(dir, 'digest.log'), 'utf8'))
  const loaded = readFileSync(out, 'utf8').split('\n')
  t.ok(loaded.includes('NativeModule net'), 'it did connect (net is loaded)')
  for (const m of ['http', '_http_client', '_http_server', 'http2', 'assert', 'child_process', 'timers/promises', 'fs/promises']) {
    t.notOk(loaded.includes(`NativeModule ${m}`), `no ${m}`)
  }
})
