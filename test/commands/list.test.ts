import t from 'tap'
import { mkdirSync, writeFileSync, chownSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { enroot, enrootEnv, userTmp, IS_ROOT, testUser, requireFeature, runAsUser, REPO } from '../helpers/env.js'
import { makePlan } from '../runtime/harness.js'
import type { ContainerPlan } from '../../launcher/src/runtime/plan-types.js'
import { errorLine, busyboxImage } from './fixtures.js'
import { table } from '../../launcher/src/commands/list.js'

function populate (data: string): void {
  for (const n of ['beta', 'alpha']) mkdirSync(join(data, n))
  writeFileSync(join(data, 'stray.sqsh'), '')
  mkdirSync(join(data, '.hidden'))
  if (IS_ROOT) { const u = testUser(); for (const n of ['beta', 'alpha', 'stray.sqsh', '.hidden']) chownSync(join(data, n), u.uid, u.gid) }
}

t.test('plain list is ls -1: sorted, stray files included, hidden entries not', async t => {
  const dir = userTmp(t)
  const env = enrootEnv(dir)
  populate(join(dir, 'data'))
  const r = await enroot(['list'], env)
  t.same([r.status, r.stdout], [0, 'alpha\nbeta\nstray.sqsh\n'])
})

t.test('fancy list has enroot\'s columns and names without processes alone', async t => {
  const dir = userTmp(t)
  const env = enrootEnv(dir)
  populate(join(dir, 'data'))
  const r = await enroot(['list', '--fancy'], env)
  t.equal(r.status, 0)
  t.same(r.stdout.split('\n'), [
    'NAME        PID  COMM  STATE  STARTED  TIME  MNTNS  USERNS  COMMAND',
    'alpha', 'beta', 'stray.sqsh', ''
  ])
})

t.test('an unreadable data path is reported', async t => {
  const dir = userTmp(t)
  const r = await enroot(['list'], { ...enrootEnv(dir), ENROOT_DATA_PATH: join(dir, 'missing', 'x') })
  t.equal(r.status, 1)
  t.equal(errorLine(r), `[ERROR] Could not change directory: ${join(dir, 'missing', 'x')}`)
})

t.test('table pads every column but the last, like column -t', async t => {
  t.equal(table([['A', 'BB', 'C'], ['long', '', 'x y'], ['n']]), 'A     BB  C\nlong      x y\nn\n')
})

t.test('fancy list shows a running container\'s process under its name', async t => {
  if (!requireFeature(t, 'the native runtime', existsSync(join(REPO, 'native', 'build', 'Release', 'enroot_native.node')), 'run npm run build:native')) return
  const dir = userTmp(t)
  const env = enrootEnv(dir, { ENROOT_SYSCONF_PATH: REPO })
  t.equal((await enroot(['create', '-n', 'bb', busyboxImage(dir)], env)).status, 0)
  const running = enroot(['start', 'bb', '/bin/busybox', 'sleep', '2'], env)
  let out = ''
  for (let i = 0; i < 40 && !/\nbb +\d+ /.test(out); i++) {
    await new Promise(resolve => setTimeout(resolve, 100))
    out = (await enroot(['list', '-f'], env)).stdout
  }
  t.match(out, /\nbb +\d+ +\S+ +[A-Z] +\d\d:\d\d:\d\d +\d\d:\d\d:\d\d +\d+ +\d+ +\/bin\/busybox sleep 2\n/)
  t.equal((await running).status, 0)
  t.equal((await enroot(['list', '-f'], env)).stdout.split('\n')[1], 'bb', 'gone once it exits')
})

t.test('fancy list names each container of a process that runs several (the Slurm launcher runs them in-process)', async t => {
  if (!requireFeature(t, 'the native runtime', existsSync(join(REPO, 'native', 'build', 'Release', 'enroot_native.node')), 'run npm run build:native')) return
  const dir = userTmp(t)
  const env = enrootEnv(dir, { ENROOT_SYSCONF_PATH: REPO })
  const image = busyboxImage(dir)
  for (const n of ['one', 'two']) t.equal((await enroot(['create', '-n', n, image], env)).status, 0)
  const plan = (name: string): ContainerPlan => makePlan(dir, join(dir, 'data', name), ['/bin/busybox', 'sleep', '3'], {
    name, runtimeDir: join(dir, 'run', `launcher-${name}`)
  })
  const driver = join(dir, 'two.mjs')
  writeFileSync(driver, `import { runContainer } from ${JSON.stringify(join(REPO, 'dist', 'runtime', 'engine.js'))}
const plans = ${JSON.stringify([plan('one'), plan('two')])}
const r = await Promise.all(plans.map(p => runContainer(p)))
process.exitCode = r.every(x => x.status === 0) ? 0 : 1
`)
  const running = runAsUser(process.execPath, [driver], { env })
  let out = ''
  for (let i = 0; i < 60 && !(/\none +\d+ /.test(out) && /\ntwo +\d+ /.test(out)); i++) {
    await new Promise(resolve => setTimeout(resolve, 100))
    out = (await enroot(['list', '-f'], env)).stdout
  }
  t.match(out, /\none +\d+ +\S+ +[A-Z] .*\/bin\/busybox sleep 3\n/)
  t.match(out, /\ntwo +\d+ +\S+ +[A-Z] .*\/bin\/busybox sleep 3\n/)
  const r = await running
  t.equal(r.status, 0, r.stderr)
})
