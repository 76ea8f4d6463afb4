import t, { type Test } from 'tap'
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { mkdirSync, chownSync, lchownSync, chmodSync, writeFileSync, existsSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync } from 'node:fs'
import { join } from 'node:path'
import { enroot, enrootEnv, userTmp, IS_ROOT, testUser, requireFeature, runAsUser, REPO, ENROOT } from '../helpers/env.js'
import { errorLine, busyboxImage } from './fixtures.js'
import { pidsWith, until } from '../helpers/procs.js'

t.test('start validates the rootfs, -e, --mount and --conf before anything runs', async t => {
  const dir = userTmp(t)
  const env = enrootEnv(dir)
  const c = join(dir, 'data', 'c')
  mkdirSync(c)
  if (IS_ROOT) chownSync(c, testUser().uid, testUser().gid)
  const cases: Array<[string[], string]> = [
    [['start', 'nope'], `[ERROR] No such file or directory: ${join(dir, 'data', 'nope')}`],
    [['start', 'a/b'], '[ERROR] Invalid argument: a/b'],
    [['start', '..'], '[ERROR] Invalid argument: ..'],
    [['start', '-e', '1X', 'c'], '[ERROR] Invalid argument: 1X'],
    [['start', '-m', 'a b', 'c'], '[ERROR] Invalid argument: a b'],
    [['start', '-m', '/x::/y', 'c'], '[ERROR] Invalid argument: /x::/y'],
    [['start', '--conf', join(dir, 'none.conf'), 'c'], `[ERROR] No such file or directory: ${join(dir, 'none.conf')}`],
    [['start', '--rc', join(dir, 'none.rc'), 'c'], `[ERROR] No such file or directory: ${join(dir, 'none.rc')}`]
  ]
  for (const [args, msg] of cases) {
    const r = await enroot(args, env)
    t.same([r.status, errorLine(r)], [1, msg], args.join(' '))
  }
  const usage = await enroot(['start'], env)
  t.same([usage.status, usage.stdout.startsWith('Usage: enroot start')], [1, true])
})

t.test('a conf script with a syntax error is shown as warnings, then Invalid argument', async t => {
  const dir = userTmp(t)
  const conf = join(dir, 'bad.conf')
  writeFileSync(conf, 'environ() {\n')
  const r = await enroot(['start', '-c', conf, 'c'], enrootEnv(dir))
  t.equal(r.status, 1)
  t.match(r.stderr, /\[WARN\] /)
  t.equal(errorLine(r), `[ERROR] Invalid argument: ${conf}`)
})

t.test('a container runs with the planned environment, drop-ins, built-in hooks and conf script', async t => {
  if (!requireFeature(t, 'the native runtime', existsSync(join(REPO, 'native', 'build', 'Release', 'enroot_native.node')), 'run npm run build:native')) return
  const dir = userTmp(t)
  const env = enrootEnv(dir, { ENROOT_SYSCONF_PATH: REPO, TERM: 'vt100' })
  t.equal((await enroot(['create', '-n', 'bb', busyboxImage(dir)], env)).status, 0)
  const conf = join(dir, 'c.conf')
  writeFileSync(conf, 'environ() { echo FROM_CONF=1; }\nmounts() { echo "' + dir + ' /mnt/host none x-create=dir,bind,ro"; }\n')
  const r = await enroot(['start', '-c', conf, '-e', 'CLI=2', 'bb', '/bin/busybox', 'sh', '-c',
    'echo "$FROM_IMAGE $FROM_CONF $CLI $TERM"; head -3 /etc/passwd | cut -d: -f1; ls /mnt/host/c.conf; exit 7'], env)
  t.equal(r.status, 7, 'the container\'s status passes through', { stderr: r.stderr })
  const u = IS_ROOT ? testUser().name : String(process.env.USER)
  t.equal(r.stdout, `1 1 2 vt100\nroot\nnobody\n${u}\n/mnt/host/c.conf\n`)
})

// ---- the runtime through the CLI: hooks, limits, job control, terminals, package managers, SIGKILL ----

const haveNative = (t: Parameters<typeof requireFeature>[0]): boolean =>
  requireFeature(t, 'the native runtime', existsSync(join(REPO, 'native', 'build', 'Release', 'enroot_native.node')), 'run npm run build:native')

/** A busybox container `bb` (every applet linked) in a fresh configuration; sysconf is the repository's. */
async function container (t: Test, extra: Record<string, string> = {}): Promise<{ dir: string, env: Record<string, string> }> {
  const dir = userTmp(t)
  const env = enrootEnv(dir, { ENROOT_SYSCONF_PATH: REPO, ...extra })
  t.equal((await enroot(['create', '-n', 'bb', busyboxImage(dir)], env)).status, 0)
  return { dir, env }
}

/** A sysconf directory holding only the given hooks.d files (name → content, executable). */
function sysconf (dir: string, hooks: Record<string, string>): string {
  const d = join(dir, 'sysconf')
  mkdirSync(join(d, 'hooks.d'), { recursive: true })
  for (const [n, c] of Object.entries(hooks)) writeFileSync(join(d, 'hooks.d', n), c, { mode: 0o755 })
  if (IS_ROOT) chownTree(d)
  return d
}

function chownTree (p: string): void {
  const u = testUser()
  chownSync(p, u.uid, u.gid)
  if (statSync(p).isDirectory()) for (const n of readdirSync(p)) chownTree(join(p, n))
}

/** `enroot ARGS` in the background, as the test user (signal and SIGKILL tests). */
function spawnEnroot (args: string[], env: Record<string, string>): { child: ChildProcess, out: { stdout: string, stderr: string } } {
  const u = IS_ROOT ? testUser() : undefined
  const child = spawn('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, ENROOT, ...args], {
    env, stdio: ['ignore', 'pipe', 'pipe'], ...(u !== undefined ? { uid: u.uid, gid: u.gid } : {})
  })
  const out = { stdout: '', stderr: '' }
  child.stdout?.on('data', (d: Buffer) => { out.stdout += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { out.stderr += d.toString() })
  return { child, out }
}

const exited = async (c: ChildProcess): Promise<{ code: number | null, signal: string | null }> =>
  c.exitCode !== null || c.signalCode !== null
    ? { code: c.exitCode, signal: c.signalCode }
    : await new Promise(resolve => c.on('close', (code, signal) => resolve({ code, signal })))

/** The container's own process (busybox exec'd), not node or the pid-namespace parent sharing node's command line. */
const containerPids = (marker: string): number[] =>
  pidsWith(marker).filter(p => { try { return readFileSync(`/proc/${p}/cmdline`, 'utf8').startsWith('/bin/busybox') } catch { return false } })

const procState = (pid: number): string => { try { const s = readFileSync(`/proc/${pid}/stat`, 'utf8'); return s.slice(s.lastIndexOf(')') + 2, s.lastIndexOf(')') + 3) } catch { return '' } }
const procPpid = (pid: number): number => { const s = readFileSync(`/proc/${pid}/stat`, 'utf8'); return Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]) }

t.test('a built-in hook\'s mounts are in place before the next hook runs (a later hook writes into the new /dev)', async t => {
  if (!haveNative(t)) return
  const dir = userTmp(t)
  const sys = sysconf(dir, {
    '10-devices.sh': readFileSync(join(REPO, 'etc', 'hooks.d', '10-devices.sh'), 'utf8'),
    '20-dev.sh': '#!/bin/sh\necho from-hook > "$ENROOT_ROOTFS/dev/hook-marker"\n'
  })
  const env = enrootEnv(dir, { ENROOT_SYSCONF_PATH: sys, ENROOT_RESTRICT_DEV: 'y' })
  t.equal((await enroot(['create', '-n', 'bb', busyboxImage(dir)], env)).status, 0)
  const r = await enroot(['start', 'bb', '/bin/busybox', 'sh', '-c', 'cat /dev/hook-marker; ls /dev/null'], env)
  t.same([r.status, r.stdout], [0, 'from-hook\n/dev/null\n'], r.stderr)
})

t.test('the container gets the caller\'s RLIMIT_NOFILE soft limit back, not the one Node raised', async t => {
  if (!haveNative(t)) return
  const { env } = await container(t)
  // sh stays the parent of node (the `; true` prevents exec), as a login shell would be.
  const r = await runAsUser('/bin/sh', ['-c', `ulimit -Sn 517; "${process.execPath}" "${ENROOT}" start bb /bin/busybox sh -c 'ulimit -Sn'; true`], { env })
  t.equal(r.stdout, '517\n', r.stderr)
})

t.test('--pid mirrors job control: the container stops, so does its parent; continuing the parent continues it', async t => {
  if (!haveNative(t)) return
  const { env } = await container(t)
  const marker = `sleep ${String(4000000 + Math.floor(Math.random() * 100000))}`
  const { child, out } = spawnEnroot(['start', '--pid', 'bb', '/bin/busybox', ...marker.split(' ')], env)
  t.teardown(() => { for (const p of pidsWith(marker)) try { process.kill(p, 'SIGKILL') } catch {} })
  t.ok(await until(() => containerPids(marker).length > 0), 'container running')
  const inner = containerPids(marker)[0] as number
  const mirror = procPpid(inner)
  process.kill(inner, 'SIGSTOP')
  t.ok(await until(() => procState(mirror) === 'T'), 'the pid-namespace parent stopped itself')
  process.kill(mirror, 'SIGCONT')
  t.ok(await until(() => procState(inner) !== 'T' && procState(mirror) !== 'T'), 'both run again')
  // PID 1 of the namespace ignores signals it has no handler for, except SIGKILL and SIGSTOP from outside.
  process.kill(inner, 'SIGKILL')
  const e = await exited(child)
  t.same([e.code, e.signal], [137, null], out.stderr)
})

t.test('an interactive shell works under a pseudo-terminal: typed commands run, the status comes back', async t => {
  if (!haveNative(t)) return
  const { env } = await container(t)
  const py = `
import os, pty, sys, time, select
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
out = b''
def pump(pat, secs):
    global out
    end = time.time() + secs
    while pat not in out and time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                d = os.read(fd, 4096)
            except OSError:
                return
            if not d:
                return
            out += d
os.write(fd, b'echo MARK$((6*7))\\n')
pump(b'MARK42', 30)
os.write(fd, b'busybox tty; [ -t 0 ] && echo STDIN-IS-TTY; exit 3\\n')
pump(b'\\0never', 30)
_, st = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors='replace').replace('\\r', ''))
print('STATUS', os.WEXITSTATUS(st) if os.WIFEXITED(st) else -os.WTERMSIG(st))
`
  const r = await runAsUser('python3', ['-c', py, process.execPath, ENROOT, 'start', 'bb'], { env })
  t.match(r.stdout, /MARK42\n/, r.stderr)
  t.match(r.stdout, /\n\/dev\/(pts\/\d+|console)\n/, 'the terminal is the container\'s stdin')
  t.match(r.stdout, /STDIN-IS-TTY\n/)
  t.match(r.stdout, /STATUS 3\n$/)
})

t.test('--root --rw: a package manager (busybox dpkg) installs files owned by other users and runs chown/chmod', async t => {
  if (!haveNative(t)) return
  if (!requireFeature(t, 'dpkg-deb', existsSync('/usr/bin/dpkg-deb'))) return
  const { dir, env } = await container(t)
  // A .deb whose data has a file owned by 100:101 and a setuid file, and whose postinst chowns and chmods:
  // every chown to an id outside the one-id map succeeds through the fake-root filter, as under enroot.
  const pkg = join(dir, 'pkg')
  mkdirSync(join(pkg, 'DEBIAN'), { recursive: true })
  mkdirSync(join(pkg, 'opt', 'demo'), { recursive: true })
  writeFileSync(join(pkg, 'DEBIAN', 'control'), 'Package: demo\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@example.com>\nDescription: demo\n')
  writeFileSync(join(pkg, 'DEBIAN', 'postinst'), '#!/bin/sh\nset -e\nchown 100:101 /opt/demo/file\nchmod 640 /opt/demo/file\nchgrp 7 /opt/demo\nchown -h 5:5 /opt/demo/link\n', { mode: 0o755 })
  writeFileSync(join(pkg, 'opt', 'demo', 'file'), 'hi\n')
  writeFileSync(join(pkg, 'opt', 'demo', 'suid'), 'x\n')
  symlinkSync('file', join(pkg, 'opt', 'demo', 'link'))
  if (IS_ROOT) { chownSync(join(pkg, 'opt', 'demo', 'suid'), 100, 101); lchownSync(join(pkg, 'opt', 'demo', 'link'), 3, 3) }
  chmodSync(join(pkg, 'opt', 'demo', 'suid'), 0o4755)
  execFileSync('dpkg-deb', ['-Zgzip', '--build', pkg, join(dir, 'data', 'bb', 'demo.deb')], { stdio: 'ignore' })
  mkdirSync(join(dir, 'data', 'bb', 'root'))   // --root logs in there
  if (IS_ROOT) for (const p of ['demo.deb', 'root']) chownSync(join(dir, 'data', 'bb', p), testUser().uid, testUser().gid)
  const script = 'set -e; mkdir -p /var/lib/dpkg/info /opt; touch /var/lib/dpkg/status; busybox dpkg -i /demo.deb; ' +
    'stat -c "%a %n" /opt/demo/file /opt/demo/suid; cat /opt/demo/file; id -u'
  const r = await enroot(['start', '--root', '--rw', 'bb', '/bin/busybox', 'sh', '-c', script], env)
  t.equal(r.status, 0, r.stderr)
  t.match(r.stdout, /640 \/opt\/demo\/file\n/)
  t.match(r.stdout, /755 \/opt\/demo\/suid\n/, 'the setuid bit of a file chowned to a foreign id is dropped (the chown was faked)')
  t.match(r.stdout, /hi\n0\n$/)
  t.ok(existsSync(join(dir, 'data', 'bb', 'opt', 'demo', 'file')), '--rw: the install persists in the container')
})

t.test('hostile input: mount targets with .. or through planted symlinks stay in the rootfs; bad names and confs', async t => {
  if (!haveNative(t)) return
  const { dir, env } = await container(t)
  const outside = join(dir, 'outside')
  mkdirSync(outside)
  if (IS_ROOT) chownTree(outside)
  symlinkSync(outside, join(dir, 'data', 'bb', 'escape'))   // planted in the image: absolute, points at the host
  symlinkSync('../../../../../../..', join(dir, 'data', 'bb', 'up'))
  if (IS_ROOT) { lchownSync(join(dir, 'data', 'bb', 'escape'), testUser().uid, testUser().gid); lchownSync(join(dir, 'data', 'bb', 'up'), testUser().uid, testUser().gid) }
  const src = join(dir, 'src')
  mkdirSync(src)
  writeFileSync(join(src, 'f'), 'content\n')
  if (IS_ROOT) chownTree(src)
  for (const target of ['/escape/x', '/up/tmp/x', '/../../x', '/tmp/../../x']) {
    const r = await enroot(['start', '-m', `${src}:${target}`, 'bb', '/bin/busybox', 'sh', '-c', 'ls /escape/x /up/tmp/x /x /tmp/x 2>/dev/null; true'], env)
    t.notOk(existsSync(join(outside, 'x')), `${target}: nothing is created outside the rootfs`)
    if (r.status === 0) t.notMatch(r.stdout, /\/\.\./, `${target}: mounted inside`)
    else t.match(r.stderr, /\[ERROR\]/, `${target}: refused`)
  }
  for (const name of ['a/b', '..', '.', '../bb']) {
    const r = await enroot(['start', name, 'true'], env)
    t.equal(r.status, 1, `container name ${name} is refused`)
  }
  const r = await enroot(['start', '--conf', join(dir, 'no', 'such.conf'), 'bb', 'true'], env)
  t.same([r.status, errorLine(r)], [1, `[ERROR] No such file or directory: ${join(dir, 'no', 'such.conf')}`])
})

t.test('signals and exit statuses pass through', async t => {
  if (!haveNative(t)) return
  const { env } = await container(t)
  t.equal((await enroot(['start', 'bb', '/bin/busybox', 'sh', '-c', 'exit 42'], env)).status, 42)
  t.equal((await enroot(['start', 'bb', '/bin/busybox', 'sh', '-c', 'kill -USR1 $$'], env)).status, 128 + 10, 'killed by a signal: 128+N')
  const marker = `sleep ${String(5000000 + Math.floor(Math.random() * 100000))}`
  const { child } = spawnEnroot(['start', 'bb', '/bin/busybox', ...marker.split(' ')], env)
  t.ok(await until(() => containerPids(marker).length > 0))
  child.kill('SIGTERM')
  const e = await exited(child)
  t.same([e.code, e.signal], [143, null], 'SIGTERM to start reaches the container, whose status comes back')
})

t.test('SIGKILL of start at any phase leaves no process or mount behind, and the next start removes its directory', async t => {
  if (!haveNative(t)) return
  const { dir, env } = await container(t)
  const run = join(dir, 'run')
  const secs = String(6000000 + Math.floor(Math.random() * 100000))
  const marker = `sleep ${secs}`
  const cfg = join(dir, 'config', 'hooks.d')
  mkdirSync(cfg, { recursive: true })
  // The hook phase is made long enough to be hit: the hook waits when told to (namespaces and early mounts exist).
  writeFileSync(join(cfg, '50-wait.sh'), `#!/bin/sh\n[ -n "$WAIT_IN_HOOK" ] || exit 0\ntouch "${dir}/in-hook"\nexec sleep ${secs}\n`, { mode: 0o755 })
  if (IS_ROOT) chownTree(join(dir, 'config'))
  const mounted = (): string[] => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(l => l.includes(run))
  const check = async (what: string): Promise<void> => {
    t.ok(await until(() => pidsWith(marker).length === 0, 5000), `${what}: no process left`)
    t.same(mounted(), [], `${what}: no mount on the host`)
  }
  // 1. at fixed delays after exec: config, plan, namespaces, early mounts, hooks, pivot, the command
  for (const ms of [20, 60, 100, 140, 180, 250, 400]) {
    const { child } = spawnEnroot(['start', 'bb', '/bin/busybox', 'sh', '-c', `exec /bin/busybox ${marker}`], env)
    await new Promise(resolve => setTimeout(resolve, ms))
    child.kill('SIGKILL')
    await exited(child)
    await check(`killed after ${ms} ms`)
  }
  // 2. during a hook
  {
    const { child } = spawnEnroot(['start', 'bb', 'true'], { ...env, WAIT_IN_HOOK: '1' })
    t.ok(await until(() => existsSync(join(dir, 'in-hook'))), 'the hook ran')
    child.kill('SIGKILL')
    await exited(child)
    await check('killed in a hook')
  }
  // 3. after the switch root, the container running
  {
    const { child } = spawnEnroot(['start', 'bb', '/bin/busybox', 'sh', '-c', `exec /bin/busybox ${marker}`], env)
    t.ok(await until(() => containerPids(marker).length > 0), 'the container runs')
    child.kill('SIGKILL')
    await exited(child)
    await check('killed with the container running')
  }
  // 4. an image file started directly: squashfuse goes with the container
  {
    const image = join(dir, 'busybox.sqsh')   // made by container()
    const { child } = spawnEnroot(['start', image, '/bin/busybox', 'sh', '-c', `exec /bin/busybox ${marker}`], env)
    t.ok(await until(() => containerPids(marker).length > 0), 'the image container runs')
    t.ok(pidsWith(image).some(p => readFileSync(`/proc/${p}/cmdline`, 'utf8').startsWith('squashfuse')), 'squashfuse serves it')
    child.kill('SIGKILL')
    await exited(child)
    await check('killed with an image container running')
    t.ok(await until(() => pidsWith(image).length === 0, 5000), 'squashfuse is gone')
  }
  const r = await enroot(['start', 'bb', 'true'], env)
  t.equal(r.status, 0, r.stderr)
  t.same(readdirSync(run), [], 'stale runtime directories of killed starts are gone after the next start')
})

t.test('a start killed while its conf script runs leaves nothing behind: not the script\'s bash, its children or a runtime directory', async t => {
  const { dir, env } = await container(t)
  const run = join(dir, 'run')
  const marker = `sleep ${String(7000000 + Math.floor(Math.random() * 100000))}`
  const pidFile = join(dir, 'conf.pid')
  const conf = join(dir, 'slow.conf')
  writeFileSync(conf, `environ() {\n  echo $$ > "${pidFile}.tmp"; mv "${pidFile}.tmp" "${pidFile}"\n  ${marker}\n}\n`)
  t.teardown(() => { for (const p of pidsWith(marker)) try { process.kill(p, 'SIGKILL') } catch {} })
  const gone = (pid: number): boolean => ['', 'Z'].includes(procState(pid))
  // SIGTERM and SIGINT too: no handler is installed while the plan is made, so Node dies of them.
  for (const sig of ['SIGKILL', 'SIGTERM', 'SIGINT'] as const) {
    rmSync(pidFile, { force: true })
    const { child, out } = spawnEnroot(['start', '--conf', conf, 'bb', 'true'], env)
    if (!t.ok(await until(() => existsSync(pidFile) && pidsWith(marker).length > 0), `${sig}: environ() runs`, out)) { child.kill('SIGKILL'); continue }
    const bash = Number(readFileSync(pidFile, 'utf8'))
    // 'exit', not 'close': a surviving script would hold start's stderr open, and the test would hang.
    const died = new Promise<string | null>(resolve => child.on('exit', (_code, signal) => resolve(signal)))
    child.kill(sig)
    t.equal(await died, sig, `${sig}: start died of it`)
    t.ok(await until(() => gone(bash), 2000), `${sig}: the script's bash is gone`)
    t.ok(await until(() => pidsWith(marker).length === 0, 2000), `${sig}: so is the command it was running`)
    t.same(readdirSync(run), [], `${sig}: no runtime directory is left`)
  }
})

t.test('a hook after 10-shadow reads and extends the new /etc/passwd; the container sees it read-only', async t => {
  if (!haveNative(t)) return
  const dir = userTmp(t)
  const sys = sysconf(dir, {
    '10-shadow.sh': readFileSync(join(REPO, 'etc', 'hooks.d', '10-shadow.sh'), 'utf8'),
    '20-site.sh': '#!/bin/sh\nset -e\nhead -1 "$ENROOT_ROOTFS/etc/passwd" > "$ENROOT_ROOTFS/tmp/first"\necho "site:x:4242:4242::/:/bin/sh" >> "$ENROOT_ROOTFS/etc/passwd"\n'
  })
  const env = enrootEnv(dir, { ENROOT_SYSCONF_PATH: sys })
  t.equal((await enroot(['create', '-n', 'bb', busyboxImage(dir)], env)).status, 0)
  mkdirSync(join(dir, 'data', 'bb', 'root'), { recursive: true })
  const r = await enroot(['start', 'bb', '/bin/busybox', 'sh', '-c', 'cat /tmp/first; /bin/busybox grep -c ^site: /etc/passwd; echo x >> /etc/passwd || echo read-only'], env)
  t.equal(r.status, 0, r.stderr)
  t.match(r.stdout, /^root:x:0:0:root:\/root:\/bin\/sh\n1\n.*read-only\n$/s)
})

t.test('--net, --ipc, --uts and --pid with the shipped drop-ins: own loopback, own sysfs with cgroups, pid 1, own hostname under --root', async t => {
  if (!haveNative(t)) return
  const dir = userTmp(t)
  const env = enrootEnv(dir, { ENROOT_SYSCONF_PATH: REPO })
  t.equal((await enroot(['create', '-n', 'bb', busyboxImage(dir)], env)).status, 0)
  const net = await enroot(['start', '--net', 'bb', '/bin/busybox', 'sh', '-c', 'ls /sys/class/net; ls /sys/fs/cgroup | head -1'], env)
  t.equal(net.status, 0, net.stderr)
  t.match(net.stdout, /^lo\n\S+\n$/, 'only loopback, and the cgroup view is there')
  const all = await enroot(['start', '--root', '--pid', '--ipc', '--uts', 'bb', '/bin/busybox', 'sh', '-c', 'echo $$; hostname x && hostname'], { ...env, ENROOT_LOGIN_SHELL: 'no' })
  t.equal(all.status, 0, all.stderr)
  t.equal(all.stdout, '1\nx\n')
})
