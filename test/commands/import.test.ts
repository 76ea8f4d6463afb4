// `enroot import` end to end, as the unprivileged user, against the suite's real registry: default
// names, the cache's warm path, many concurrent importers downloading each blob once, and SIGKILL in
// the download and convert phases followed by a good rerun.
import t from 'tap'
import { existsSync, readFileSync, readdirSync, statSync, watch, chmodSync, mkdirSync, chownSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs'
import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { enrootEnv, userTmp, requireFeature, testUser, runAsUser, IS_ROOT, ENROOT, type RunResult } from '../helpers/env.js'
import { registryAvailable, startRegistry, type TestRegistry } from '../helpers/registry.js'
import { busyboxImage, tarDirectory, writeOciLayout, pushLayout, type Layout } from '../helpers/oci-image.js'

type T = Parameters<typeof userTmp>[0]
const avail = registryAvailable()
const tar2sqfs = existsSync('/usr/bin/tar2sqfs')
const sha = (p: string): string => createHash('sha256').update(readFileSync(p)).digest('hex')

let reg: TestRegistry | undefined
let small: Layout | undefined
let big: Layout | undefined
const regDir = mkdtempSync(join(tmpdir(), 'enroot-import-reg-'))

/** A directory tree as one uncompressed tar layer (random bytes, so neither transfer nor squash is instant). */
function randomLayer (name: string, bytes: number): Buffer {
  const d = mkdtempSync(join(tmpdir(), 'enroot-layer-'))
  try { writeFileSync(join(d, name), randomBytes(bytes)); return tarDirectory(d) } finally { rmSync(d, { recursive: true, force: true }) }
}

t.before(async () => {
  if (!avail.ok) return
  reg = await startRegistry({ dir: regDir })
  const bb = busyboxImage()
  small = writeOciLayout(join(regDir, 'small'), 'v1', { ...bb, layers: [...bb.layers, { tar: randomLayer('a.bin', 100_000), compression: 'gzip' }, { tar: randomLayer('b.bin', 50_000), compression: 'zstd' }] })
  await pushLayout(small, reg, 'test/small:v1')
  big = writeOciLayout(join(regDir, 'big'), 'v1', { ...bb, layers: [...bb.layers, { tar: randomLayer('big.bin', 48 << 20), compression: 'none' }] })
  await pushLayout(big, reg, 'test/big:v1')
})
t.teardown(async () => { await reg?.stop(); rmSync(regDir, { recursive: true, force: true }) })

function setup (t: T): { dir: string, env: Record<string, string> } | undefined {
  if (!requireFeature(t, 'the test registry', avail.ok, avail.why) || !requireFeature(t, 'tar2sqfs', tar2sqfs)) return undefined
  const dir = userTmp(t)
  return { dir, env: enrootEnv(dir, { ENROOT_ALLOW_HTTP: 'y', ENROOT_LOCK_STALE: '2', ENROOT_SQUASH_OPTIONS: '-comp zstd -Xcompression-level 1' }) }
}

/**
 * `enroot ARGS` as the test user. `env -u NODE_OPTIONS`: tap's process-info hook adds itself to every
 * child's NODE_OPTIONS and then fails to write under .tap/ as the unprivileged user.
 */
async function enroot (args: readonly string[], env: Record<string, string>, opts: { cwd: string }): Promise<RunResult> {
  return await runAsUser('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, ENROOT, ...args], { env, cwd: opts.cwd })
}

/** `enroot ARGS` as root: the dedicated account of a cluster-wide cache. */
async function runAsRoot (args: readonly string[], env: Record<string, string>): Promise<RunResult> {
  return await new Promise((resolve, reject) => {
    const c = spawn('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, ENROOT, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    c.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    c.on('error', reject)
    c.on('close', (status, signal) => resolve({ status, signal, stdout: '', stderr }))
  })
}

const blobGets = (name: string, digest: string): number => reg?.count('GET', `/v2/${name}/blobs/${digest}`) ?? -1

t.test('imports into <image>+<tag>.sqsh in the current directory, then serves a second import from the cache', async t => {
  const s = setup(t as unknown as T)
  if (s === undefined || reg === undefined || small === undefined) return
  chmodSync(s.env.ENROOT_CACHE_PATH as string, 0o700) // private: outputs may be hard links
  const uri = `docker://${reg.host}/test/small:v1`
  const first = await enroot(['import', uri], s.env, { cwd: s.dir })
  t.equal(first.status, 0, 'exits 0', { stderr: first.stderr })
  const out = join(s.dir, 'test+small+v1.sqsh')
  t.ok(existsSync(out), 'default output name')
  const m = small.manifests[0]
  const before = m === undefined ? [] : [m.config, ...m.layers].map(b => blobGets('test/small', b.digest))
  t.same(before, [1, 1, 1, 1], 'each blob downloaded once')

  const started = Date.now()
  const second = await enroot(['import', '-o', join(s.dir, 'again.sqsh'), uri], s.env, { cwd: s.dir })
  t.equal(second.status, 0, 'exits 0', { stderr: second.stderr })
  t.match(second.stderr, /Found the converted image in the cache/)
  t.ok(Date.now() - started < 5000)
  t.equal(sha(join(s.dir, 'again.sqsh')), sha(out), 'same image')
  t.equal(statSync(join(s.dir, 'again.sqsh')).ino, statSync(out).ino, 'a private cache hands out hard links')
  t.equal(statSync(out).mode & 0o777, 0o400, 'read-only, so that the entry is not changed through the link by mistake')
  const after = m === undefined ? [] : [m.config, ...m.layers].map(b => blobGets('test/small', b.digest))
  t.same(after, before, 'nothing downloaded again')
})

t.test('an existing output is refused with enroot\'s message, and no --force exists', async t => {
  const s = setup(t as unknown as T)
  if (s === undefined || reg === undefined) return
  const out = join(s.dir, 'x.sqsh')
  writeFileSync(out, 'mine')
  if (IS_ROOT) chownSync(out, testUser().uid, testUser().gid)
  const r = await enroot(['import', '-o', out, `docker://${reg.host}/test/small:v1`], s.env, { cwd: s.dir })
  t.equal(r.status, 1)
  t.match(r.stderr, `[ERROR] File already exists: ${out}`)
  t.equal(readFileSync(out, 'utf8'), 'mine')
})

t.test('a scheme other than docker://, dockerd:// and podman:// is an invalid argument', async t => {
  const dir = userTmp(t as unknown as T)
  const env = enrootEnv(dir)
  const x = await enroot(['import', 'ftp://ubuntu'], env, { cwd: dir })
  t.equal(x.status, 1)
  t.match(x.stderr, '[ERROR] Invalid argument: ftp://ubuntu')
})

t.test('8 concurrent importers with their own temp dirs and one shared cache download each blob once', async t => {
  const s = setup(t as unknown as T)
  if (s === undefined || reg === undefined || small === undefined) return
  // A fresh repository name, so the registry's counts start at zero for this test.
  await pushLayout(small, reg, 'test/crowd:v1')
  const runs = await Promise.all(Array.from({ length: 8 }, async (_, i) => {
    const tmp = join(s.dir, `node${i}`)
    mkdirSync(tmp)
    if (IS_ROOT) chownSync(tmp, testUser().uid, testUser().gid)
    return await enroot(['import', '-o', join(s.dir, `out${i}.sqsh`), `docker://${reg?.host ?? ''}#test/crowd:v1`], { ...s.env, ENROOT_TEMP_PATH: tmp }, { cwd: s.dir })
  }))
  for (const r of runs) t.equal(r.status, 0, 'exits 0', { stderr: r.stderr })
  const m = small.manifests[0]
  t.same(m === undefined ? [] : [m.config, ...m.layers].map(b => blobGets('test/crowd', b.digest)), [1, 1, 1, 1], 'every blob fetched exactly once')
  t.equal(new Set(runs.map((_, i) => sha(join(s.dir, `out${i}.sqsh`)))).size, 1, 'identical images')
  // The cache is readable by others (0755): outputs are copies, the user's own ordinary files.
  t.equal(new Set(runs.map((_, i) => statSync(join(s.dir, `out${i}.sqsh`)).ino)).size, 8, 'copies, not links')
})

/** Start an import and send it `signal` as soon as a partial file matching `pattern` appears in the cache's tmp/. */
async function killWhen (s: { dir: string, env: Record<string, string> }, uri: string, pattern: RegExp, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  const tmpDir = join(s.env.ENROOT_CACHE_PATH as string, 'tmp')
  const u = IS_ROOT ? testUser() : undefined
  const child = spawn('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, ENROOT, 'import', '-o', join(s.dir, 'killed.sqsh'), uri], {
    cwd: s.dir, env: s.env, stdio: 'ignore', ...(u !== undefined ? { uid: u.uid, gid: u.gid } : {})
  })
  const exited = new Promise<NodeJS.Signals | null>(resolve => child.on('close', (_c, sig) => resolve(sig)))
  const seen = new Promise<void>((resolve) => {
    const poll = setInterval(() => {
      if (!existsSync(tmpDir)) return
      clearInterval(poll)
      const w = watch(tmpDir, (_ev, name) => { if (name !== null && pattern.test(name)) { w.close(); resolve() } })
    }, 2)
  })
  await Promise.race([seen, exited])
  child.kill(signal)
  const sig = await exited
  if (sig !== signal) throw new Error(`the import ended before it could be killed (${String(sig)})`)
}

for (const [phase, pattern] of [['download', /^[a-f0-9]{64}\.[a-f0-9]{16}\.part$/], ['convert', /\.sqsh\.[a-f0-9]{16}\.part$/]] as const) {
  t.test(`SIGKILL in the ${phase} phase leaves no output and no trusted entry; a rerun succeeds`, async t => {
    const s = setup(t as unknown as T)
    if (s === undefined || reg === undefined) return
    const uri = `docker://${reg.host}/test/big:v1`
    await killWhen(s, uri, pattern)
    t.notOk(existsSync(join(s.dir, 'killed.sqsh')), 'no output')
    const r = await enroot(['import', '-o', join(s.dir, 'good.sqsh'), uri], s.env, { cwd: s.dir })
    t.equal(r.status, 0, 'exits 0', { stderr: r.stderr })
    t.match(r.stderr, /Removed a stale cache lock/)
    const list = await new Promise<string>((resolve) => {
      const c = spawn('unsquashfs', ['-l', '-d', '', join(s.dir, 'good.sqsh')])
      let o = ''
      c.stdout.on('data', (d: Buffer) => { o += d.toString() })
      c.on('close', () => resolve(o))
    })
    t.match(list, /\/big\.bin\n/)
    t.match(list, /\/etc\/rc\n/)
  })
}

for (const [phase, pattern] of [['download', /^[a-f0-9]{64}\.[a-f0-9]{16}\.part$/], ['convert', /\.sqsh\.[a-f0-9]{16}\.part$/]] as const) {
  t.test(`SIGTERM in the ${phase} phase removes partial files, scratch space and locks, and dies by the signal`, async t => {
    const s = setup(t as unknown as T)
    if (s === undefined || reg === undefined) return
    await killWhen(s, `docker://${reg.host}/test/big:v1`, pattern, 'SIGTERM')
    const cache = s.env.ENROOT_CACHE_PATH as string
    t.same(readdirSync(join(cache, 'tmp')), [], 'no partial file')
    t.same(readdirSync(join(cache, 'locks')), [], 'no lock')
    t.same(readdirSync(s.env.ENROOT_TEMP_PATH as string), [], 'no scratch directory')
    t.notOk(existsSync(join(s.dir, 'killed.sqsh')), 'no output')
  })
}

t.test('a cluster cache written by another account is used read-only; what it lacks is built privately', { skip: !IS_ROOT && 'needs root to play the dedicated account' }, async t => {
  const s = setup(t as unknown as T)
  if (s === undefined || reg === undefined || small === undefined) return
  // Not under the user's directory: root rightly refuses a cache its user could swap (trust.ts).
  const shared = mkdtempSync(join(tmpdir(), 'enroot-shared-cache-'))
  t.teardown(() => { rmSync(shared, { recursive: true, force: true }) })
  chmodSync(shared, 0o755)
  // The dedicated account (root here) fills the cache.
  const uri = `docker://${reg.host}/test/small:v1`
  const admin = await runAsRoot(['import', '-o', join(shared, 'admin.sqsh'), uri], { ...s.env, ENROOT_CACHE_PATH: shared, ENROOT_TEMP_PATH: shared })
  t.equal(admin.status, 0, 'the account imports', { stderr: admin.stderr })
  const images = readdirSync(join(shared, 'images')).sort()

  const env = { ...s.env, ENROOT_CACHE_PATH: shared }
  const hit = await enroot(['import', '-o', join(s.dir, 'hit.sqsh'), uri], env, { cwd: s.dir })
  t.equal(hit.status, 0, 'a user imports from it', { stderr: hit.stderr })
  t.match(hit.stderr, /Found the converted image in the cache/)
  t.equal(sha(join(s.dir, 'hit.sqsh')), sha(join(shared, 'admin.sqsh')))
  t.not(statSync(join(s.dir, 'hit.sqsh')).ino, statSync(join(shared, 'admin.sqsh')).ino, 'a copy, not a link to the account\'s file')

  // Another name for the same layers: a new /etc/rc, so a new image the user may not add to the cache.
  await pushLayout(small, reg, 'test/other:v1')
  const miss = await enroot(['import', '-o', join(s.dir, 'miss.sqsh'), `docker://${reg.host}/test/other:v1`], env, { cwd: s.dir })
  t.equal(miss.status, 0, 'a miss still imports', { stderr: miss.stderr })
  t.same(readdirSync(join(shared, 'images')).sort(), images, 'the shared cache was not written')
  t.same(readdirSync(s.env.ENROOT_TEMP_PATH as string), [], 'the private scratch space was removed')
})

t.test('a cache directory other users can write is refused', async t => {
  const s = setup(t as unknown as T)
  if (s === undefined || reg === undefined) return
  const cache = s.env.ENROOT_CACHE_PATH as string
  chmodSync(cache, 0o777)
  const r = await enroot(['import', '-o', join(s.dir, 'x.sqsh'), `docker://${reg.host}/test/small:v1`], s.env, { cwd: s.dir })
  t.equal(r.status, 1)
  t.match(r.stderr, `[ERROR] Refusing to use cache directory: ${cache} (writable by other users, mode 0777`)
  t.notOk(existsSync(join(s.dir, 'x.sqsh')))
})
