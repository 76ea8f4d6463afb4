import t from 'tap'
import { mkdtempSync, mkdirSync, writeFileSync, chmodSync, rmSync, copyFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { execFileSync } from 'node:child_process'
import { buildPlan, resolveRootfs } from '../../launcher/src/runtime/plan.js'
import { loadConfig } from '../../launcher/src/config/load.js'
import { parseFstab } from '../../launcher/src/pipeline/fstab.js'
import { REPO } from '../helpers/env.js'

interface Fixture { root: string, data: string, sys: string, user: string, run: string }

function fixture (t: { teardown: (fn: () => void) => void }): Fixture {
  const root = mkdtempSync(join(tmpdir(), 'enroot-plan-'))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  const f = { root, data: join(root, 'data'), sys: join(root, 'sys'), user: join(root, 'user'), run: join(root, 'run') }
  const files: Record<string, string> = {
    'data/c1/etc/environment': 'IMG=1\nPATH=/img/bin\nSHARED=image\n',
    'data/c1/etc/fstab': '${ENROOT_ROOTFS}/vol /vol none x-create=dir,bind,rw,nosuid,nodev\n',
    'sys/environ.d/10-terminal.env': 'TERM=${TERM}\nSHARED=system\n',
    'sys/mounts.d/10-sys.fstab': 'tmpfs /tmp tmpfs x-create=dir,mode=755 0 -1\n/late /late none bind\n/never /never none bind 0 2\n',
    'user/environ.d/50-me.env': 'SHARED=user\nRAW=$HOME\n',
    'user/mounts.d/50-me.fstab': '/u /u none bind\n'
  }
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(join(root, rel, '..'), { recursive: true })
    writeFileSync(join(root, rel), text)
  }
  mkdirSync(join(f.sys, 'hooks.d'))
  copyFileSync(join(REPO, 'hooks.d', '10-cgroups.sh'), join(f.sys, 'hooks.d', '10-cgroups.sh'))
  chmodSync(join(f.sys, 'hooks.d', '10-cgroups.sh'), 0o755)
  mkdirSync(f.run)
  return f
}

const config = (f: Fixture, extra: Record<string, string> = {}) => loadConfig({
  env: { HOME: '/home/u', PATH: process.env.PATH ?? '/usr/bin:/bin', TERM: 'xterm', ENROOT_DATA_PATH: f.data, ENROOT_SYSCONF_PATH: f.sys, ENROOT_CONFIG_PATH: f.user, ENROOT_RUNTIME_PATH: f.run, ...extra },
  sysconfdir: join(f.root, 'noconf'),
  uid: 1000
})

const ops = (text: string, origin: string, env?: Record<string, string>) => parseFstab(text, origin, { ...(env === undefined ? {} : { env }), cwd: '/cwd' })

t.test('a plan by name: environment order, passes, hooks, settings', async t => {
  const f = fixture(t)
  const c1 = join(f.data, 'c1')
  const { plan } = buildPlan({ rootfs: 'c1', env: ['CLI=1', 'TERM'], mounts: ['/m:/m'], command: ['sh', '-c', 'true'], cwd: '/cwd', uid: 1000, instance: '42' }, config(f))
  const runtimeDir = join(f.run, '42')
  const sysMounts = ops('tmpfs /tmp tmpfs x-create=dir,mode=755 0 -1\n/late /late none bind\n/never /never none bind 0 2\n', join(f.sys, 'mounts.d/10-sys.fstab'))
  t.same({ ...plan, hookEnv: undefined }, {
    rootfs: { kind: 'dir', path: c1 },
    name: 'c1',
    writable: false,
    remapRoot: false,
    privileged: false,
    unshare: { pid: false, net: false, ipc: false, uts: false },
    runtimeDir,
    earlyMounts: [sysMounts[0]?.op],
    hooks: [{ path: join(f.sys, 'hooks.d/10-cgroups.sh'), argv: [join(f.sys, 'hooks.d/10-cgroups.sh')], builtin: 'cgroups' }],
    lateMounts: [
      ops(`${c1}/vol /vol none x-create=dir,bind,rw,nosuid,nodev\n`, `${c1}/etc/fstab`)[0]?.op,
      sysMounts[1]?.op,
      ops('/u /u none bind\n', join(f.user, 'mounts.d/50-me.fstab'))[0]?.op,
      { ...ops('/m /m', '--mount')[0]?.op, origin: '--mount' }
    ],
    environ: ['IMG=1', 'PATH=/img/bin', 'SHARED=user', 'RAW=$HOME', 'CLI=1', 'TERM=xterm'],
    hookEnv: undefined,
    login: true,
    command: ['sh', '-c', 'true']
  })
  t.equal(plan.hookEnv.ENROOT_ROOTFS, c1)
  t.equal(plan.hookEnv.HOME, '/home/u')
})

t.test('CLI flags and --conf directives set the namespaces and modes; conf functions feed the plan', async t => {
  const f = fixture(t)
  const conf = join(f.root, 'c.conf')
  writeFileSync(conf, '#ENROOT_ROOTFS_WRITABLE=y\n#ENROOT_REMAP_ROOT=n\nenviron() { echo SHARED=conf; echo "N=$#"; }\nmounts() { echo "/cm /cm none bind"; }\nrc() { exec "$@"; }\nhooks() { :; }\nN=$#\n')
  const { plan, cfg } = buildPlan({ rootfs: 'c1', conf, root: true, pid: true, net: true, ipc: true, uts: true, command: ['a', 'b'], cwd: '/cwd', uid: 1000, instance: '1' }, config(f, { ENROOT_REMAP_ROOT: 'y' }))
  t.same([plan.writable, plan.remapRoot, plan.unshare], [true, true, { pid: true, net: true, ipc: true, uts: true }], 'CLI --root beats the directive')
  t.ok(cfg.flag('ENROOT_ROOTFS_WRITABLE'))
  t.same(plan.environ.slice(-2), ['SHARED=conf', 'N=0'], 'conf environ() beats the drop-ins')
  t.same(plan.earlyMounts.map(o => [o.source, o.target, o.fstype, o.detach]), [
    ['tmpfs', '/tmp', 'tmpfs', false],
    ['none', '/proc', 'none', true], ['proc', '/proc', 'proc', false],
    ['none', '/sys', 'none', true], ['sysfs', '/sys', 'sysfs', false]
  ])
  t.same(plan.lateMounts.map(o => o.source).slice(-1), ['/cm'])
  t.equal(plan.rc, '    exec "$@"\n')
  t.same(plan.hooks.at(-1), { path: conf, argv: ['bash', '--norc', '--noprofile', '-c', 'set -euo pipefail; source "$0"; hooks', conf, 'a', 'b'] })
})

t.test('--rc replaces the conf rc(); a missing --rc is No such file or directory', async t => {
  const f = fixture(t)
  const rc = join(f.root, 'rc')
  writeFileSync(rc, 'exec "$@"\n')
  t.equal(buildPlan({ rootfs: 'c1', rc, cwd: '/', uid: 1000 }, config(f)).plan.rc, 'exec "$@"\n')
  t.throws(() => buildPlan({ rootfs: 'c1', rc: join(f.root, 'nope'), cwd: '/', uid: 1000 }, config(f)), { code: 'NOT_FOUND' })
  const fifo = join(f.root, 'fifo')
  execFileSync('mkfifo', [fifo])
  const writer = execFileSync('sh', ['-c', `(printf 'from a pipe\\n' > ${fifo} &) >/dev/null 2>&1; echo started`], { encoding: 'utf8' })
  t.equal(writer.trim(), 'started')
  t.equal(buildPlan({ rootfs: 'c1', rc: fifo, cwd: '/', uid: 1000 }, config(f)).plan.rc, 'from a pipe\n', 'a pipe such as <(...) is accepted')
  t.throws(() => buildPlan({ rootfs: 'c1', rc: f.root, cwd: '/', uid: 1000 }, config(f)), { code: 'NOT_FOUND' }, 'a directory is not an rc')
})

t.test('rootfs: names, bad names, missing containers, squashfs images', async t => {
  const f = fixture(t)
  const cfg = config(f)
  for (const bad of ['', 'a/b', '..', '.', '../c1']) t.throws(() => resolveRootfs(bad, cfg), { code: 'INVALID', message: `Invalid argument: ${bad}` }, JSON.stringify(bad))
  t.throws(() => resolveRootfs('nope', cfg), { code: 'NOT_FOUND', message: `No such file or directory: ${join(f.data, 'nope')}` })
  const img = join(f.root, 'img.sqsh')
  execFileSync('mksquashfs', [join(f.data, 'c1'), img, '-quiet', '-no-progress', '-noappend'], { stdio: 'ignore' })
  t.same(resolveRootfs(img, cfg), { source: { kind: 'squashfs', image: img }, path: '' })
  const tmp = join(f.root, 'tmp')
  mkdirSync(tmp)
  const { plan } = buildPlan({ rootfs: img, cwd: '/', uid: 1000, instance: '9' }, config(f, { ENROOT_TEMP_PATH: tmp }))
  t.same([plan.name, plan.rootfs], [undefined, { kind: 'squashfs', image: img }])
  t.same(plan.environ.slice(0, 2), ['IMG=1', 'PATH=/img/bin'], 'the image environment is read out of the squashfs')
  t.equal(plan.lateMounts[0]?.source, join(f.run, '9', 'mnt', 'root', 'vol'), 'and its fstab')
  t.same(readdirSync(tmp), [], 'nothing is left in the temporary directory')
})

t.test('invalid -e and --mount entries are rejected before anything runs', async t => {
  const f = fixture(t)
  t.throws(() => buildPlan({ rootfs: 'c1', env: ['1X=2'], cwd: '/', uid: 1000 }, config(f)), { code: 'INVALID', message: 'Invalid argument: 1X=2' })
  t.throws(() => buildPlan({ rootfs: 'c1', mounts: ['a b'], cwd: '/', uid: 1000 }, config(f)), { code: 'INVALID', message: 'Invalid argument: a b' })
})
