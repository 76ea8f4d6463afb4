// A job's launcher service on a node (enroot slurm-service, doc/slurm.md "The launcher service"): its
// wire format as pure functions, then the service itself, run as the test user without Slurm and spoken
// to as spank_enroot.so's relay does: a launch answered with READY and, after the container's end, its
// exit status and clean-up; errors as log lines and an ERROR status; quit; idle exit. The relay and the
// epilog's quit against a real cluster are in spank-enroot.test.ts.
import t, { type Test } from 'tap'
import { connect } from 'node:net'
import { chownSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { enroot, enrootEnv, IS_ROOT, REPO, requireFeature, testUser, userTmp } from '../helpers/env.js'
import { buildRootfs, squashRootfs, HAVE_MKSQUASHFS, HAVE_SQUASHFUSE } from '../helpers/rootfs.js'
import { until, pidsWith, cmdline } from '../helpers/procs.js'
import { needRuntime } from '../runtime/harness.js'
import { SERVICE_MAGIC, SHIM_DENIED, SHIM_DENIED_PREFIXES, parseServiceRequest, replyLines, requestEnv } from '../../launcher/src/slurm/service-protocol.js'
import { inSlurmCgroup } from '../../launcher/src/slurm/service-spawn.js'

const frame = (kind: string, argv: string[], env: string[]): Buffer =>
  Buffer.from([SERVICE_MAGIC, kind, ...argv, '', ...env, ''].map(f => `${f}\0`).join(''))

t.test('a request parses once complete; anything else is refused', async t => {
  const whole = frame('launch', ['slurm-launch', '--job-id=1'], ['A=1', 'B=x=y'])
  for (let n = 0; n < whole.length; n++) t.equal(parseServiceRequest(whole.subarray(0, n)), undefined, `${n} bytes are not a request yet`)
  t.same(parseServiceRequest(whole), { kind: 'launch', argv: ['slurm-launch', '--job-id=1'], env: { A: '1', B: 'x=y' } })
  t.same(parseServiceRequest(frame('quit', [], [])), { kind: 'quit', argv: [], env: {} })
  t.throws(() => parseServiceRequest(Buffer.from('ENROOT-SERVICE-0\0')), /not a launcher service request/)
  t.throws(() => parseServiceRequest(Buffer.from(`${SERVICE_MAGIC}\0exec\0`)), /unknown request kind/)
  t.throws(() => parseServiceRequest(Buffer.concat([whole, Buffer.from('x')])), /data after the request/)
})

t.test('replies are lines: one L line per line of log text, a status line, the exit status', async t => {
  t.equal(replyLines('A'), 'A\n')
  t.equal(replyLines('L', 'pyxis: one\n[INFO] two\n'), 'L pyxis: one\nL [INFO] two\n')
  t.equal(replyLines('S', 'READY 42\n'), 'S READY 42\n')
  t.equal(replyLines('X', '1'), 'X 1\n')
  t.equal(replyLines('L', 'x'.repeat(5000)).length, 4003, 'a long line is cut to fit the relay\'s buffer')
})

t.test('a request runs with the job environment plus the site values that the shim withholds from jobs', async t => {
  const env = requestEnv(
    { PATH: '/step/path', HOME: '/home/u', ENROOT_MOUNT_HOME: 'n', SLURM_STEP_ID: '4' },
    { PATH: '/first/path', ENROOT_CACHE_PATH: '/site/cache', ENROOT_MOUNT_HOME: 'y', SLURM_STEP_ID: '0', OTHER: 'first-step' })
  t.same(env, { PATH: '/step/path', HOME: '/home/u', ENROOT_MOUNT_HOME: 'n', SLURM_STEP_ID: '4', ENROOT_CACHE_PATH: '/site/cache' })
})

t.test('the variables the service takes from the site are exactly those spank_enroot.so withholds from jobs', async t => {
  const c = readFileSync(join(REPO, 'spank', 'launcher.c'), 'utf8')
  const strings = (array: string): string[] => [...(new RegExp(`${array}\\[\\] = \\{([^}]*)\\}`).exec(c)?.[1] ?? '').matchAll(/"([^"]+)"/g)].map(m => m[1] as string)
  t.same(strings('deny').sort(), [...SHIM_DENIED].sort())
  t.same(strings('deny_prefix').sort(), [...SHIM_DENIED_PREFIXES].sort())
})

t.test('a Slurm cgroup keeps the service off; other cgroup paths do not', async t => {
  t.ok(inSlurmCgroup('4:freezer:/slurm/uid_1001/job_12/step_0\n'))
  t.ok(inSlurmCgroup('0::/system.slice/slurmstepd.scope/job_12/step_3/user/task_0\n'))
  t.ok(inSlurmCgroup('3:memory:/slurm_node1/uid_1001/job_12/step_batch\n'))
  t.notOk(inSlurmCgroup('12:pids:/\n0::/user.slice/user-1001.slice/session-3.scope\n'))
  t.notOk(inSlurmCgroup(''))
})

interface Exchange { lines: string[], closed: Promise<void>, next: (re: RegExp) => Promise<string>, hangUp: () => void }

/** Sends one request and collects the reply lines, as spank/service.c's relay does. */
function talk (socket: string, kind: string, argv: string[], env: Record<string, string>): Exchange {
  const s = connect(socket)
  const lines: string[] = []
  let buf = ''
  let wake = (): void => {}
  s.on('data', (d: Buffer) => {
    buf += d.toString()
    let nl
    while ((nl = buf.indexOf('\n')) !== -1) { lines.push(buf.slice(0, nl)); buf = buf.slice(nl + 1) }
    wake()
  })
  s.on('error', () => {})
  const closed = new Promise<void>(resolve => { s.on('close', () => { resolve(); wake() }) })
  let done = false
  void closed.then(() => { done = true })
  s.write(frame(kind, argv, Object.entries(env).map(([k, v]) => `${k}=${v}`)))
  const next = async (re: RegExp): Promise<string> => {
    for (;;) {
      const hit = lines.find(l => re.test(l))
      if (hit !== undefined) return hit
      if (done) throw new Error(`no line matching ${String(re)} in:\n${lines.join('\n')}`)
      await new Promise<void>(resolve => { wake = resolve; setTimeout(resolve, 200) })
    }
  }
  return { lines, closed, next, hangUp: () => { s.destroy() } }
}

/** A runtime path as the shim configures it, with the user's own directory (the first launcher makes it). */
function runtimePath (base: string): { path: string, dir: string } {
  const path = join(base, 'pyxis')
  const uid = IS_ROOT ? testUser().uid : process.getuid?.() ?? 0
  const dir = join(path, String(uid))
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  if (IS_ROOT) { const u = testUser(); chownSync(path, u.uid, u.gid); chownSync(dir, u.uid, u.gid) }
  return { path, dir }
}

/** A service as the test user, on a socket where the shim would put it for `job`; resolves once it listens. */
async function startService (t: Test, job: number, idle: number): Promise<{ base: string, env: Record<string, string>, rt: { path: string, dir: string }, socket: string, service: ReturnType<typeof enroot> }> {
  const base = userTmp(t)
  const env = enrootEnv(base)
  const rt = runtimePath(base)
  const socket = join(rt.dir, `service.${job}.sock`)
  const service = enroot(['slurm-service', `--socket=${socket}`, `--idle=${idle}`], env)
  t.ok(await until(() => existsSync(socket)), 'the service listens')
  return { base, env, rt, socket, service }
}

t.test('the service launches a request\'s container, answers READY, and the exit status once it ended and is cleaned up', async t => {
  if (!needRuntime(t)) return
  if (!requireFeature(t, 'squashfs tools', HAVE_MKSQUASHFS && HAVE_SQUASHFUSE, 'squashfs-tools and squashfuse')) return
  const { base, env, rt, socket, service } = await startService(t, 7, 60)
  const image = squashRootfs(buildRootfs(join(base, 'rootfs')), join(base, 'image.sqsh'))
  const step = (n: number, more: string[] = []): string[] =>
    ['slurm-launch', '--job-id=7', `--step-id=${n}`, `--runtime-path=${rt.path}`, `--image=${image}`, '--use-squashfuse', `--cwd=${base}`, ...more]

  // Two steps side by side: each gets its own container, and the second one's search skips the first's.
  const one = talk(socket, 'launch', step(0), env)
  const ready1 = await one.next(/^S /)
  const two = talk(socket, 'launch', step(1), env)
  const ready2 = await two.next(/^S /)
  t.match(ready1, /^S READY \d+$/)
  t.match(ready2, /^S READY \d+$/)
  t.equal(one.lines[0], 'A', 'the request was taken')
  t.ok(one.lines.some(l => l === 'L pyxis: starting container: pyxis_7.0'), 'the launcher\'s log reaches the client')
  const pid1 = Number(ready1.split(' ')[2])
  const pid2 = Number(ready2.split(' ')[2])
  t.not(pid1, pid2)
  // Both containers' lower layer is one squashfuse mount of the image, the service's holder of it.
  const holders = (): string[] => readdirSync(rt.dir).filter(f => f.startsWith('lower.'))
  t.equal(holders().length, 1, 'one holder directory')
  t.equal(pidsWith(`squashfuse -f -o uid=`).filter(p => cmdline(p).includes(image)).length, 1, 'one squashfuse for both containers')
  t.equal(readFileSync(`/proc/${pid2}/root/etc/group`, 'utf8').split('\n')[0], 'root:x:0:', 'the image is the second container\'s root')
  t.notOk(one.lines.some(l => l.startsWith('X')), 'no exit status while the container runs')

  process.kill(pid1, 'SIGKILL') // what the shim does at step end
  t.equal(await one.next(/^X /), 'X 0')
  await one.closed
  t.ok(existsSync(`/proc/${pid2}`), 'the other step\'s container is untouched')
  t.same(readdirSync(rt.dir).filter(f => f.startsWith('7.0')), [], 'the first step left nothing in the runtime directory')

  process.kill(pid2, 'SIGKILL')
  t.equal(await two.next(/^X /), 'X 0')

  // A client that goes away (the shim killed its relay: nobody will join) ends its container.
  const three = talk(socket, 'launch', step(2), env)
  const pid3 = Number((await three.next(/^S READY/)).split(' ')[2])
  three.hangUp()
  t.ok(await until(() => !existsSync(`/proc/${pid3}`)), 'a client hanging up ends its container')

  // Two requests at once: one is prepared, the other is declined without a word (its relay then runs
  // the launcher itself).
  const both = [talk(socket, 'launch', step(10), env), talk(socket, 'launch', step(11), env)]
  const outcome = await Promise.all(both.map(async x => await x.next(/^S READY/).catch(() => undefined)))
  const served = outcome.findIndex(o => o !== undefined)
  t.equal(outcome.filter(o => o === undefined).length, 1, 'one of them was served')
  t.same((both[1 - served] as Exchange).lines, [], 'the one that came while the other was prepared was declined')
  process.kill(Number((outcome[served] as string).split(' ')[2]), 'SIGKILL')
  t.equal(await (both[served] as Exchange).next(/^X /), 'X 0')

  // A holder whose squashfuse died ends with it, and the next step gets a new one.
  for (const p of pidsWith(`squashfuse -f -o uid=`).filter(p => cmdline(p).includes(image))) process.kill(p, 'SIGKILL')
  t.ok(await until(() => holders().length === 0), 'the holder ended with its squashfuse')

  // quit (the epilog) ends what still runs, and the client hears the exit status first.
  const four = talk(socket, 'launch', step(3), env)
  const pid4 = Number((await four.next(/^S READY/)).split(' ')[2])
  t.equal(holders().length, 1, 'a new holder for the next step')
  await talk(socket, 'quit', [], {}).closed
  t.notOk(existsSync(`/proc/${pid4}`), 'quit ended the running container')
  t.equal(await four.next(/^X /), 'X 0')
  const r = await service
  t.equal(r.status, 0, r.stderr)
  t.notOk(existsSync(socket), 'the socket is removed')
  t.same(pidsWith(socket), [], 'no process is left (the holders are forks of the service)')
  t.same(pidsWith(image), [], 'no squashfuse is left')
  t.same(holders(), [], 'the holder directory is removed')
})

t.test('a failing request: its error as log lines, an ERROR status, exit status 1; the service goes on', async t => {
  const { base, env, rt, socket, service } = await startService(t, 8, 60)
  const missing = join(base, 'missing.sqsh')
  writeFileSync(join(base, 'not-squashfs.sqsh'), 'x')
  const bad = talk(socket, 'launch', ['slurm-launch', '--job-id=8', '--step-id=0', `--runtime-path=${rt.path}`, `--image=${join(base, 'not-squashfs.sqsh')}`], env)
  t.match(await bad.next(/^S /), /^S ERROR failed to create container filesystem for image/)
  t.equal(await bad.next(/^X /), 'X 1')
  t.ok(bad.lines.some(l => /^L .*failed to create container filesystem/.test(l)), 'the error is in the log too')
  // Declined without a word (the relay then runs the launcher, which knows or reports them): another verb,
  // an option this service does not know (an upgrade during the job).
  for (const argv of [['slurm-teardown', '--job-id=8', '--step-id=0', `--image=${missing}`], ['slurm-launch', '--job-id=8', '--step-id=1', '--from-the-future=1']]) {
    const declined = talk(socket, 'launch', argv, env)
    await declined.closed
    t.same(declined.lines, [], `declined: ${argv.join(' ')}`)
  }
  await talk(socket, 'quit', [], {}).closed
  t.equal((await service).status, 0)
})

t.test('an idle service exits and removes its socket; a second one started beside a live one leaves', async t => {
  const { env, socket, service: first } = await startService(t, 9, 2)
  const second = await enroot(['slurm-service', `--socket=${socket}`, '--idle=60'], env)
  t.equal(second.status, 0, 'the second one exits at once')
  t.ok(existsSync(socket), 'and leaves the live one\'s socket')
  const r = await first
  t.equal(r.status, 0, r.stderr)
  t.notOk(existsSync(socket), 'the idle one removed its socket')
  const usage = await enroot(['slurm-service', '--idle=0'], env)
  t.equal(usage.status, 1)
  t.match(usage.stderr, /--socket=PATH and a positive --idle are required/)
})
