// Mount operations of the fstab dialect applied inside the container (spec §5.6): confinement to the
// rootfs, x-create placeholders, nofail/silent, read-only binds, and early vs late passes.
import t from 'tap'
import { chownSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { IS_ROOT, testUser, userTmp } from '../helpers/env.js'
import { buildRootfs } from '../helpers/rootfs.js'
import { SYSTEM_MOUNTS, fstab, makePlan, needRuntime, runPlan } from './harness.js'

t.test('rejects mount targets that escape the rootfs with EXDEV', async t => {
  if (!needRuntime(t)) return
  const base = userTmp(t)
  const rootfs = buildRootfs(join(base, 'rootfs'))
  symlinkSync('/', join(rootfs, 'etc', 'x'))
  symlinkSync('../../..', join(rootfs, 'etc', 'up'))
  for (const target of ['/../../etc', '/etc/x/..', '/etc/up', '/etc/up/tmp']) {
    const r = await runPlan(base, makePlan(base, rootfs, ['true'], { lateMounts: fstab(`tmpfs ${target} tmpfs defaults\n`) }))
    t.equal(r.status, 1, target)
    t.match(r.stderr, `failed to resolve path: ${join(base, 'run', 'c', 'mnt', 'root')}`, target)
    t.match(r.stderr, 'Invalid cross-device link', target)
  }
})

t.test('absolute symlinks in the image are re-anchored at the rootfs', async t => {
  if (!needRuntime(t)) return
  const base = userTmp(t)
  const rootfs = buildRootfs(join(base, 'rootfs'))
  symlinkSync('/tmp', join(rootfs, 'etc', 'abs'))
  mkdirSync(join(rootfs, 'tmp', 'sub'))
  const r = await runPlan(base, makePlan(base, rootfs, ['sh', '-c', 'grep -c " /tmp/sub tmpfs" /proc/self/mounts'], {
    lateMounts: fstab('tmpfs /etc/abs/sub tmpfs defaults\n')
  }))
  t.equal(r.status, 0, r.stderr)
  t.equal(r.stdout.trim(), '1', 'mounted on the rootfs /tmp/sub, not the host one')
})

t.test('x-create makes dir, file and auto placeholders with mode 0000', async t => {
  if (!needRuntime(t)) return
  const base = userTmp(t)
  const rootfs = buildRootfs(join(base, 'rootfs'))
  const hostDir = join(base, 'hostdir')
  const hostFile = join(base, 'hostfile')
  mkdirSync(hostDir)
  writeFileSync(join(hostDir, 'in-dir'), 'd\n')
  writeFileSync(hostFile, 'f\n')
  const r = await runPlan(base, makePlan(base, rootfs, ['sh', '-c', 'cat /a/b/dir/in-dir /auto-file; ls -d /auto-dir; test -d /mk'], {
    writable: true,
    lateMounts: fstab(`${hostDir} /a/b/dir none x-create=dir,bind\n${hostFile} /auto-file none x-create=auto,bind\n${hostDir} /auto-dir none x-create=auto,bind\ntmpfs /mk tmpfs x-create=dir\n${hostFile} /mkfile none x-create=file,bind\n`)
  }))
  t.equal(r.status, 0, r.stderr)
  t.equal(r.stdout, 'd\nf\n/auto-dir\n')
  for (const p of ['a/b/dir', 'auto-dir', 'mk']) t.ok(statSync(join(rootfs, p)).isDirectory(), p)
  for (const p of ['auto-file', 'mkfile']) t.ok(statSync(join(rootfs, p)).isFile(), p)
  for (const p of ['a/b/dir', 'auto-file', 'auto-dir', 'mk', 'mkfile']) t.equal(statSync(join(rootfs, p)).mode & 0o7777, 0, `${p} is a placeholder`)
  t.equal(statSync(join(rootfs, 'a')).mode & 0o777, 0o755, 'parents are 0755')
})

t.test('nofail turns errors into warnings, silent hides them', async t => {
  if (!needRuntime(t)) return
  const base = userTmp(t)
  const rootfs = buildRootfs(join(base, 'rootfs'))
  const missing = join(base, 'missing')
  const warn = await runPlan(base, makePlan(base, rootfs, ['true'], { lateMounts: fstab(`${missing} /mnt none x-create=dir,bind,nofail\n`) }))
  t.equal(warn.status, 0, warn.stderr)
  t.match(warn.stderr, `failed to mount: ${missing} at`)
  const quiet = await runPlan(base, makePlan(base, rootfs, ['true'], { lateMounts: fstab(`${missing} /mnt none x-create=dir,bind,nofail,silent\n`) }))
  t.equal(quiet.status, 0)
  t.equal(quiet.stderr, '')
  const fatal = await runPlan(base, makePlan(base, rootfs, ['true'], { lateMounts: fstab(`${missing} /mnt none x-create=dir,bind\n`) }))
  t.equal(fatal.status, 1)
  t.match(fatal.stderr, /failed to mount: .* No such file or directory/)
})

t.test('a read-only bind stays read-only, a read-write one writes through', async t => {
  if (!needRuntime(t)) return
  const base = userTmp(t)
  const rootfs = buildRootfs(join(base, 'rootfs'))
  const vol = join(base, 'vol')
  mkdirSync(vol)
  if (IS_ROOT) chownSync(vol, testUser().uid, testUser().gid)
  const r = await runPlan(base, makePlan(base, rootfs, ['sh', '-c', 'touch /ro/x 2>&1; echo hi > /rw/y'], {
    lateMounts: fstab(`${vol} /ro none x-create=dir,bind,ro\n${vol} /rw none x-create=dir,bind\n`)
  }))
  t.equal(r.status, 0, r.stderr)
  t.match(r.stdout, /Read-only file system/)
  t.equal(readFileSync(join(vol, 'y'), 'utf8'), 'hi\n')
})

t.test('early mounts are in place for hooks, late mounts come after them', async t => {
  if (!needRuntime(t)) return
  const base = userTmp(t)
  const rootfs = buildRootfs(join(base, 'rootfs'))
  const r = await runPlan(base, makePlan(base, rootfs, ['sh', '-c', 'cat /e/f; grep -c " /e/l " /proc/self/mountinfo; grep " /e " /proc/self/mountinfo | grep -c shared:'], {
    earlyMounts: [...SYSTEM_MOUNTS, ...fstab('tmpfs /e tmpfs x-create=dir,private\n')],
    lateMounts: fstab('tmpfs /e/l tmpfs x-create=dir\n'),
    hooks: [{ path: '/bin/sh', argv: ['/bin/sh', '-c', 'grep -q " $ENROOT_ROOTFS/e " /proc/self/mountinfo && echo from-hook > "$ENROOT_ROOTFS/e/f"'] }]
  }))
  t.equal(r.stdout, 'from-hook\n1\n0\n', r.stderr)
})

t.test('a remount needs no source: `none TARGET none bind,remount,ro` makes an earlier bind read-only', async t => {
  if (!needRuntime(t)) return
  const base = userTmp(t)
  const rootfs = buildRootfs(join(base, 'rootfs'))
  const src = join(base, 'src')
  mkdirSync(src)
  if (IS_ROOT) chownSync(src, testUser().uid, testUser().gid)
  const plan = makePlan(base, rootfs, ['sh', '-c', 'touch /mnt/a && echo rw; touch /mnt2/b 2>/dev/null || echo ro'], {
    lateMounts: fstab(`${src} /mnt none x-create=dir,bind\n${src} /mnt2 none x-create=dir,bind\nnone /mnt2 none bind,remount,ro,nosuid,nodev\n`)
  })
  const r = await runPlan(base, plan)
  t.same([r.status, r.stdout], [0, 'rw\nro\n'], r.stderr)
})
