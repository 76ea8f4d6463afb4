// The acting side of `enroot start`: namespaces, the private rootfs, exit status and signals, as the
// unprivileged test user through real user namespaces.
import t from 'tap'
import { chmodSync, chownSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { IS_ROOT, testUser, userTmp } from '../helpers/env.js'
import { buildRootfs } from '../helpers/rootfs.js'
import { DRIVER, exitOf, fstab, makePlan, needRuntime, runExec, runPlan, spawnPlan, until, writePlan } from './harness.js'

t.test('runs a command in a busybox rootfs as the caller, mapped to itself', async t => {
  if (!needRuntime(t)) return
  const base = userTmp(t)
  const rootfs = buildRootfs(join(base, 'rootfs'))
  const r = await runPlan(base, makePlan(base, rootfs, ['sh', '-c', 'id -u; cat /proc/self/uid_map; hostname; echo "FOO=$FOO"'], { environ: ['PATH=/bin', 'FOO=bar'] }))
  t.equal(r.status, 0, r.stderr)
  const [uid, map, host, foo] = r.stdout.trim().split('\n')
  const me = IS_ROOT ? testUser().uid : process.getuid?.()
  t.equal(uid, String(me))
  t.same(map?.trim().split(/\s+/), [String(me), String(me), '1'], 'one id, mapped to itself')
  t.ok(host !== undefined && host.length > 0, 'hostname works')
  t.equal(foo, 'FOO=bar', 'the environment is exactly the environ lines')
  t.notOk(existsSync(join(base, 'run', 'c')), 'the runtime directory is removed at exit')
})

t.test('remapRoot gives uid 0, the fake-root seccomp filter, and chown succeeds', async t => {
  if (!needRuntime(t)) return
  const base = userTmp(t)
  const rootfs = buildRootfs(join(base, 'rootfs'))
  const r = await runPlan(base, makePlan(base, rootfs, ['sh', '-c', 'id -u; grep "^Seccomp:" /proc/self/status; touch /tmp/f; chown 123 /tmp/f && echo chown-ok'], {
    remapRoot: true, lateMounts: fstab('tmpfs /tmp tmpfs x-create=dir,mode=1777\n')
  }))
  t.equal(r.status, 0, r.stderr)
  t.match(r.stdout, /^0\nSeccomp:\s+2\nchown-ok\n$/)
})

t.test('without --rw the rootfs is read-only and never written; with --rw writes persist', async t => {
  if (!needRuntime(t)) return
  const base = userTmp(t)
  const rootfs = buildRootfs(join(base, 'rootfs'))
  const before = readdirSync(rootfs).sort()
  const ro = await runPlan(base, makePlan(base, rootfs, ['sh', '-c', 'touch /newfile 2>&1; echo x > /tmp/t && cat /tmp/t'], {
    lateMounts: fstab('tmpfs /tmp tmpfs x-create=dir\n')
  }))
  t.equal(ro.status, 0, ro.stderr)
  t.match(ro.stdout, /Read-only file system/)
  t.match(ro.stdout, /^x$/m, 'sub-mounts keep their own flags')
  t.same(readdirSync(rootfs).sort(), before, 'the rootfs directory is unchanged')
  const rw = await runPlan(base, makePlan(base, rootfs, ['sh', '-c', 'echo persisted > /newfile'], { writable: true }))
  t.equal(rw.status, 0, rw.stderr)
  t.equal(readFileSync(join(rootfs, 'newfile'), 'utf8'), 'persisted\n')
})

t.test('32 concurrent starts of one rootfs all succeed (no lock)', async t => {
  if (!needRuntime(t)) return
  const base = userTmp(t)
  const rootfs = buildRootfs(join(base, 'rootfs'))
  const runs = await Promise.all(Array.from({ length: 32 }, async (_, i) =>
    await runPlan(base, makePlan(base, rootfs, ['sh', '-c', `echo ${i}`], { runtimeDir: join(base, 'run', `c${i}`) }))))
  t.same(runs.map(r => r.status), Array(32).fill(0), runs.map(r => r.stderr).join(''))
  t.same(runs.map(r => r.stdout.trim()), runs.map((_, i) => String(i)))
})

t.test('a read-only rootfs owned by root starts, and hooks can still replace files (enroot#91)', { skip: !IS_ROOT && 'needs root to make the fixture' }, async t => {
  if (!needRuntime(t)) return
  const base = userTmp(t)
  const rootfs = buildRootfs(join(base, 'rootfs'), { owner: { uid: 0, gid: 0 } })
  chownSync(rootfs, 0, 0)
  for (const d of ['', 'bin', 'etc']) chmodSync(join(rootfs, d), 0o555)
  const hook = join(base, 'hook.sh')
  writeFileSync(hook, '#!/bin/sh\nset -e\ncp "$ENROOT_ROOTFS/etc/passwd" "$ENROOT_ROOTFS/etc/passwd.new"\necho "extra:x:7:7::/:/bin/sh" >> "$ENROOT_ROOTFS/etc/passwd.new"\nmv "$ENROOT_ROOTFS/etc/passwd.new" "$ENROOT_ROOTFS/etc/passwd"\n')
  chmodSync(hook, 0o755)
  const r = await runPlan(base, makePlan(base, rootfs, ['sh', '-c', 'tail -1 /etc/passwd; test -d /bin/placeholder && echo ok'], {
    hooks: [{ path: hook, argv: [hook] }], lateMounts: fstab('tmpfs /bin/placeholder tmpfs x-create=dir\n')
  }))
  t.equal(r.status, 0, r.stderr)
  t.equal(r.stdout, 'extra:x:7:7::/:/bin/sh\nok\n')
  t.equal(statSync(rootfs).mode & 0o777, 0o555)
  t.notMatch(readFileSync(join(rootfs, 'etc', 'passwd'), 'utf8'), /extra/, 'the shared rootfs is untouched')
})

t.test('exit status and terminating signal pass through', async t => {
  if (!needRuntime(t)) return
  const base = userTmp(t)
  const rootfs = buildRootfs(join(base, 'rootfs'))
  t.equal((await runPlan(base, makePlan(base, rootfs, ['sh', '-c', 'exit 7']))).status, 7)
  t.equal((await runPlan(base, makePlan(base, rootfs, ['sh', '-c', 'kill -TERM $$']))).status, 143)
})

t.test('SIGTERM to the start reaches the container', async t => {
  if (!needRuntime(t)) return
  const base = userTmp(t)
  const rootfs = buildRootfs(join(base, 'rootfs'))
  const { child, out } = spawnPlan(base, makePlan(base, rootfs, ['sh', '-c', 'trap "echo got-term; exit 5" TERM; echo ready; while :; do sleep 0.05; done']))
  t.ok(await until(() => out.text.includes('ready')), out.err)
  child.kill('SIGTERM')
  const e = await exitOf(child)
  t.equal(e.code, 5, out.err)
  t.match(out.text, /got-term/)
})

t.test('pid, net, ipc and uts namespaces are unshared on request', async t => {
  if (!needRuntime(t)) return
  const base = userTmp(t)
  const rootfs = buildRootfs(join(base, 'rootfs'))
  const hostIpc = readFileSync('/proc/self/stat', 'utf8') && (await import('node:fs')).readlinkSync('/proc/self/ns/ipc')
  const pidMounts = fstab('/dev /dev none x-create=dir,rbind,nosuid\nnone /proc none x-create=dir,x-detach,nofail,silent\nproc /proc proc x-create=dir,rw,nosuid,nodev,noexec,private\n')
  const r = await runPlan(base, makePlan(base, rootfs,
    ['sh', '-c', 'echo pid=$$; ls /proc | grep -c "^[0-9]"; cat /proc/net/dev | grep -c ":"; readlink /proc/self/ns/ipc; hostname inside && hostname'], {
      unshare: { pid: true, net: true, ipc: true, uts: true }, earlyMounts: pidMounts, remapRoot: true
    }))
  t.equal(r.status, 0, r.stderr)
  const [pid, nprocs, nifs, ipc, host] = r.stdout.trim().split('\n')
  t.equal(pid, 'pid=1', 'the command is pid 1')
  t.ok(Number(nprocs) <= 3, `a fresh /proc shows only the container (${nprocs ?? ''})`)
  t.equal(nifs, '1', 'only loopback')
  t.not(ipc, hostIpc, 'own ipc namespace')
  t.equal(host, 'inside', 'hostname changed inside')
  t.not((await import('node:os')).hostname(), 'inside', 'and not outside')
})

t.test('a pid namespace start passes the exit status and signals through', async t => {
  if (!needRuntime(t)) return
  const base = userTmp(t)
  const rootfs = buildRootfs(join(base, 'rootfs'))
  const pidns = { pid: true, net: false, ipc: false, uts: false }
  t.equal((await runPlan(base, makePlan(base, rootfs, ['sh', '-c', 'exit 9'], { unshare: pidns }))).status, 9)
  const { child, out } = spawnPlan(base, makePlan(base, rootfs, ['sh', '-c', 'trap "exit 6" TERM; echo ready; while :; do sleep 0.05; done'], { unshare: pidns }))
  t.ok(await until(() => out.text.includes('ready')), out.err)
  child.kill('SIGTERM')
  t.equal((await exitOf(child)).code, 6)
})

t.test('exec joins a running container: its namespaces, environment, cwd and filter', async t => {
  if (!needRuntime(t)) return
  const base = userTmp(t)
  const rootfs = buildRootfs(join(base, 'rootfs'))
  writeFileSync(join(rootfs, 'etc', 'marker'), 'inside\n')
  const { child, out } = spawnPlan(base, makePlan(base, rootfs, ['sh', '-c', 'cd /etc; echo $$; exec sleep 30'], { environ: ['PATH=/bin', 'FOO=bar'] }))
  t.ok(await until(() => out.text.includes('\n')), out.err)
  const pid = Number(out.text.trim())
  const r = await runExec(pid, ['sh', '-c', 'cat marker; echo "FOO=$FOO"; grep "^Seccomp:" /proc/self/status'])
  t.equal(r.status, 0, r.stderr)
  t.match(r.stdout, /^inside\nFOO=bar\nSeccomp:\s+2\n$/)
  child.kill('SIGTERM')
  t.equal((await exitOf(child)).code, 143)
})

t.test('privileged (real root, ENROOT_ALLOW_SUPERUSER): no user namespace, no filter, nothing leaks to the host', { skip: !IS_ROOT && 'needs root' }, async t => {
  if (!needRuntime(t)) return
  const base = userTmp(t)
  const rootfs = buildRootfs(join(base, 'rootfs'))
  const plan = makePlan(base, rootfs, ['sh', '-c', 'id -u; cat /proc/self/uid_map; grep "^Seccomp:" /proc/self/status'], {
    privileged: true, hooks: [{ path: '/bin/sh', argv: ['/bin/sh', '-c', 'touch "$ENROOT_ROOTFS/etc/hooked"'] }]
  })
  const { spawnSync } = await import('node:child_process')
  const r = spawnSync('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, DRIVER, writePlan(base, plan)], { encoding: 'utf8' })
  t.equal(r.status, 0, r.stderr)
  t.match(r.stdout, /^0\n\s*0\s+0\s+4294967295\nSeccomp:\s+0\n$/)
  t.notOk(existsSync(join(rootfs, 'etc', 'hooked')), 'hook writes stay in the private layer')
  t.notMatch(readFileSync('/proc/self/mountinfo', 'utf8'), base, 'no mount reached the host')
})
