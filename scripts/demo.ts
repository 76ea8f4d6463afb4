// The daemons of `bash scripts/demo.sh`: a loopback registry on 127.0.0.1:5000 seeded with a busybox
// image, and a 3-node Slurm cluster (munged, slurmctld, three slurmd in their own UTS + mount
// namespaces) whose plugstack loads spank/spank_enroot.so. Unlike test/helpers/slurm-cluster.ts, whose
// daemons die with the test process, these are started detached (own session, output to files, pid files
// under /var/tmp/enroot-demo) so that they outlive this program and a person can use the cluster after the
// demo. Compiled by `npx tsc -p tsconfig.tools.json` into .build/scripts/demo.js.
//
//   node .build/scripts/demo.js start    stop whatever a previous run left, then start everything; idempotent
//   node .build/scripts/demo.js check    srun -N3 --container-image=127.0.0.1:5000#busybox hostname as the user
//   node .build/scripts/demo.js stop     stop every demo daemon
//   node .build/scripts/demo.js status   which daemons run
//   node .build/scripts/demo.js usage    the commands to use the running cluster
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { chmodSync, chownSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { dirname, join, resolve } from 'node:path'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { testUser, type TestUser } from '../test/helpers/env.js'
import { NODE_LOCAL, freePorts, getentIds, slurmConf } from '../test/helpers/slurm-cluster.js'
import { busyboxImage, writeOciLayout, pushLayout } from '../test/helpers/oci-image.js'
import { registryConfig } from '../test/helpers/registry.js'
import { siteLauncher, plugstackLine } from './demo-site.js'

/** Everything the demo writes (state, logs, registry storage) lives here; nothing else on the machine changes
 *  except the enroot-test user and the NODE_LOCAL mount point. */
export const DEMO_DIR = '/var/tmp/enroot-demo'
export const REGISTRY_PORT = 5000
export const IMAGE = `127.0.0.1:${REGISTRY_PORT}#busybox`
const SLURM_DIR = join(DEMO_DIR, 'slurm')
const REGISTRY_DIR = join(DEMO_DIR, 'registry')
export const SLURM_CONF = join(SLURM_DIR, 'slurm.conf')
const NODES = ['node1', 'node2', 'node3']
const DAEMON_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
// Works from the sources (tap's loader: scripts/) and compiled (.build/scripts/): find the checkout by its
// package.json rather than by a fixed depth.
const REPO = ((): string => {
  let d = dirname(fileURLToPath(import.meta.url))
  while (!existsSync(join(d, 'package.json')) || !existsSync(join(d, 'bin', 'enroot'))) {
    if (d === '/') throw new Error('cannot find the checkout (package.json + bin/enroot) above scripts/demo')
    d = dirname(d)
  }
  return d
})()

const say = (msg: string): void => { process.stdout.write(`demo: ${msg}\n`) }

/** The demo daemons by the program name the kernel shows (comm): stop() only ever signals these. */
const DAEMONS = ['slurmd', 'slurmctld', 'munged', 'docker-registry', 'unshare', 'sh'] as const

function cmdline (pid: number): string[] | undefined {
  try { return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(s => s !== '') } catch { return undefined }
}
function comm (pid: number): string | undefined {
  try { return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() } catch { return undefined }
}

/** Processes this demo started (now or in an earlier run): a daemon whose command line names DEMO_DIR.
 *  Found by scanning /proc rather than trusting pid files only, so that a lost or stale pid file can neither
 *  leave a daemon behind nor make us signal an unrelated process that reused the pid. */
function demoProcesses (): Array<{ pid: number, name: string }> {
  const found: Array<{ pid: number, name: string }> = []
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    const pid = Number(d)
    const name = comm(pid)
    if (name === undefined || !(DAEMONS as readonly string[]).includes(name)) continue
    const argv = cmdline(pid)
    if (argv?.some(a => a.includes(`${DEMO_DIR}/`)) === true) found.push({ pid, name })
  }
  return found
}

/** Everything still running on a demo node (slurmstepds, launchers, tasks, containers) after its slurmd:
 *  a process is on a node when its mount namespace has that node's scratch bind-mounted on NODE_LOCAL (the
 *  test suite's clusters bind other directories, so they are never matched), and so are its descendants
 *  (a container has its own mount namespace but is a child of the node's launcher). */
function nodeLeftovers (): number[] {
  const parent = new Map<number, number>()
  const onNode = new Set<number>()
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue
    const pid = Number(d)
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      parent.set(pid, Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]))
      // mountinfo: id parent major:minor ROOT MOUNTPOINT ...
      const hit = readFileSync(`/proc/${pid}/mountinfo`, 'utf8').split('\n').some(l => {
        const f = l.split(' ')
        return f[4] === NODE_LOCAL && (f[3] ?? '').startsWith(`${SLURM_DIR}/node`)
      })
      if (hit) onNode.add(pid)
    } catch {}
  }
  const isLeftover = (pid: number): boolean => {
    for (let p: number | undefined = pid, n = 0; p !== undefined && p > 1 && n < 64; p = parent.get(p), n++) if (onNode.has(p)) return true
    return false
  }
  return [...parent.keys()].filter(isLeftover)
}

const alive = (pid: number): boolean => {
  try { process.kill(pid, 0); return true } catch { return false }
}

export async function stopAll (): Promise<void> {
  // Slurm daemons first (they still talk to munged while exiting), then munged and the registry.
  const rank = (n: string): number => n === 'munged' || n === 'docker-registry' ? 1 : 0
  for (const stage of [0, 1]) {
    const victims = demoProcesses().filter(p => rank(p.name) === stage)
    if (victims.length > 0) say(`stopping ${victims.map(v => `${v.name}[${v.pid}]`).join(' ')}`)
    for (const v of victims) { try { process.kill(v.pid, 'SIGTERM') } catch {} }
    const deadline = Date.now() + 6000
    while (victims.some(v => alive(v.pid)) && Date.now() < deadline) await sleep(50)
    for (const v of victims) if (alive(v.pid)) { try { process.kill(v.pid, 'SIGKILL') } catch {} }
    while (victims.some(v => alive(v.pid))) await sleep(20)
    if (stage === 0) {
      // slurmd does not take its running steps down with it; a hung or interrupted job would outlive the node
      const rest = nodeLeftovers()
      if (rest.length > 0) say(`killing ${rest.length} leftover job processes on the nodes`)
      for (const pid of rest) { try { process.kill(pid, 'SIGKILL') } catch {} }
    }
  }
  for (const f of ['registry.pid', 'munged.pid', 'slurmctld.pid', ...NODES.map(n => `${n}.pid`)]) rmSync(join(DEMO_DIR, f), { force: true })
}

/** Start a daemon in its own session with stdio on a log file, record its pid, and let it outlive us. */
function detached (name: string, cmd: string, args: string[], opts: { env: Record<string, string>, uid?: number, gid?: number, log: string }): number {
  const fd = openSync(opts.log, 'a')
  const child = spawn(cmd, args, {
    detached: true,
    env: opts.env,
    cwd: '/',
    stdio: ['ignore', fd, fd],
    ...(opts.uid !== undefined ? { uid: opts.uid, gid: opts.gid } : {})
  })
  closeSync(fd)
  child.unref()
  if (child.pid === undefined) throw new Error(`could not start ${cmd}`)
  writeFileSync(join(DEMO_DIR, `${name}.pid`), `${child.pid}\n`)
  return child.pid
}

const tail = (file: string, n = 15): string => {
  try { return `==> ${file}\n${readFileSync(file, 'utf8').split('\n').slice(-n).join('\n')}` } catch { return `==> ${file} (missing)` }
}

/** Is anything accepting connections on 127.0.0.1:port? */
async function listening (port: number): Promise<boolean> {
  return await new Promise(resolve => {
    const s = connect({ host: '127.0.0.1', port })
    s.once('connect', () => { s.destroy(); resolve(true) })
    s.once('error', () => resolve(false))
  })
}

function portOwner (port: number): string {
  const r = spawnSync('ss', ['-Hltnp', `sport = :${port}`], { encoding: 'utf8' })
  return (r.stdout ?? '').trim() || 'unknown process'
}

async function startRegistry (): Promise<void> {
  if (await listening(REGISTRY_PORT)) {
    // our own earlier registry was stopped above, so this is someone else's: never take it over or kill it
    throw new Error(`port ${REGISTRY_PORT} on 127.0.0.1 is already in use by something that is not this demo:\n  ${portOwner(REGISTRY_PORT)}\n` +
      `Stop it (e.g. a docker-registry service: 'systemctl stop docker-registry' or kill the process) and run the demo again.`)
  }
  const storage = join(REGISTRY_DIR, 'storage')
  mkdirSync(storage, { recursive: true })
  const config = join(REGISTRY_DIR, 'config.yml')
  // Loopback only, plain HTTP (clients need ENROOT_ALLOW_HTTP); storage kept between runs.
  writeFileSync(config, registryConfig({ storage, port: REGISTRY_PORT, secret: randomBytes(16).toString('hex') }))
  const log = join(REGISTRY_DIR, 'registry.log')
  const pid = detached('registry', '/usr/bin/docker-registry', ['serve', config], { env: { PATH: DAEMON_PATH }, log })
  for (let i = 0; ; i++) {
    try {
      const r = await fetch(`http://127.0.0.1:${REGISTRY_PORT}/v2/`)
      await r.arrayBuffer()
      if (r.status === 200) break
    } catch {}
    if (!alive(pid) || i > 200) throw new Error(`docker-registry did not start\n${tail(log)}`)
    await sleep(50)
  }
  say(`registry: http://127.0.0.1:${REGISTRY_PORT} (pid ${pid}, storage ${storage})`)
}

async function seedImage (): Promise<void> {
  // Rebuilt each run (milliseconds: one busybox-static layer, reproducible bytes, so the digest is stable and
  // skopeo uploads nothing new on a second run).
  const dir = mkdtempSync(join(DEMO_DIR, 'oci-'))
  try {
    const layout = writeOciLayout(dir, 'latest', busyboxImage())
    await pushLayout(layout, { host: `127.0.0.1:${REGISTRY_PORT}` }, 'busybox:latest')
    say(`image: 127.0.0.1:${REGISTRY_PORT}/busybox:latest ${layout.top.digest}`)
  } finally { rmSync(dir, { recursive: true, force: true }) }
}

function client (cmd: string, args: string[], user?: TestUser, timeoutMs = 60_000): ReturnType<typeof spawnSync> & { stdout: string, stderr: string } {
  const r = spawnSync(cmd, args, {
    encoding: 'utf8',
    timeout: timeoutMs,
    cwd: user?.home ?? '/',
    env: { PATH: DAEMON_PATH, HOME: user?.home ?? '/root', USER: user?.name ?? 'root', LANG: 'C.UTF-8', SLURM_CONF, PWD: user?.home ?? '/' },
    ...(user !== undefined ? { uid: user.uid, gid: user.gid } : {})
  })
  return { ...r, stdout: r.stdout ?? '', stderr: r.stderr ?? '' }
}

async function startCluster (): Promise<void> {
  const munge = getentIds('munge')
  // Slurm's saved state is kept between runs (job ids keep counting up, so a new job never reuses the name
  // of an unnamed container a killed job may have left on a node); logs are appended to.
  const mungeDir = join(SLURM_DIR, 'munge')
  const sockDir = join(SLURM_DIR, 'munge-socket')
  mkdirSync(mungeDir, { recursive: true, mode: 0o700 })
  mkdirSync(sockDir, { recursive: true, mode: 0o755 })
  chownSync(mungeDir, munge.uid, munge.gid)
  chownSync(sockDir, munge.uid, munge.gid)
  const key = join(mungeDir, 'munge.key')
  if (!existsSync(key)) { writeFileSync(key, randomBytes(1024), { mode: 0o400 }); chownSync(key, munge.uid, munge.gid) }
  const socket = join(sockDir, 'munge.socket')
  rmSync(socket, { force: true })
  const mungePid = detached('munged', '/usr/sbin/munged', ['--foreground', `--key-file=${key}`, `--socket=${socket}`, `--pid-file=${join(mungeDir, 'munged.pid')}`,
    `--log-file=${join(mungeDir, 'munged.log')}`, `--seed-file=${join(mungeDir, 'seed')}`, '--num-threads=2', '--force'],
  { env: { PATH: DAEMON_PATH }, uid: munge.uid, gid: munge.gid, log: join(mungeDir, 'munged.out') })
  for (let i = 0; !existsSync(socket); i++) {
    if (i > 250 || !alive(mungePid)) throw new Error(`munged did not start\n${tail(join(mungeDir, 'munged.log'))}`)
    await sleep(20)
  }

  const ports = await freePorts(NODES.length + 1)
  const plugstack = join(SLURM_DIR, 'plugstack.conf')
  const launcher = siteLauncher(join(DEMO_DIR, 'bin'), REPO, process.execPath)
  const so = join(REPO, 'spank', 'spank_enroot.so')
  if (!existsSync(so)) throw new Error(`${so} is missing: run scripts/setup.sh (make -C spank)`)
  writeFileSync(plugstack, plugstackLine(so, launcher), { mode: 0o644 })
  writeFileSync(SLURM_CONF, slurmConf(SLURM_DIR, ports[0] as number, ports.slice(1), {
    clusterName: 'enrootdemo', verbose: false,
    comment: 'The enroot-ts demo cluster (scripts/demo.ts): everything on 127.0.0.1, no cgroups, no systemd.'
  }), { mode: 0o644 })
  mkdirSync(join(SLURM_DIR, 'state'), { recursive: true })
  const hosts = join(SLURM_DIR, 'hosts')
  writeFileSync(hosts, `127.0.0.1 localhost ${NODES.join(' ')}\n::1 localhost ip6-localhost ip6-loopback\n`, { mode: 0o644 })
  mkdirSync(NODE_LOCAL, { recursive: true })

  const env = { PATH: DAEMON_PATH, HOME: '/root', LANG: 'C.UTF-8' }
  // -c: a (re)started demo has no jobs. An allocation left by a user (salloc --no-shell) or by a run that
  // was killed would otherwise come back from the saved state and hold the nodes, and the demo's srun wait.
  detached('slurmctld', '/usr/sbin/slurmctld', ['-D', '-c', '-f', SLURM_CONF], { env, log: join(SLURM_DIR, 'slurmctld.out') })
  for (const node of NODES) {
    const nd = join(SLURM_DIR, node)
    mkdirSync(join(nd, 'spool'), { recursive: true })
    // the node's local scratch (seen as NODE_LOCAL inside the node): enroot's storage for every user
    mkdirSync(join(nd, 'local', 'enroot'), { recursive: true })
    chmodSync(join(nd, 'local'), 0o1777)
    chmodSync(join(nd, 'local', 'enroot'), 0o1777)
    // unshare and sh exec, so the recorded pid ends up being slurmd's own
    const script = `hostname ${node} && mount --bind ${nd}/local ${NODE_LOCAL} && mount --bind ${hosts} /etc/hosts && exec /usr/sbin/slurmd -D -N ${node} -f ${SLURM_CONF}`
    detached(node, 'unshare', ['--uts', '--mount', '--propagation', 'slave', 'sh', '-c', script], { env, log: join(SLURM_DIR, `${node}.out`) })
  }

  const logs = (): string => [join(SLURM_DIR, 'slurmctld.log'), join(SLURM_DIR, 'slurmctld.out'), ...NODES.flatMap(n => [join(SLURM_DIR, n, 'slurmd.log'), join(SLURM_DIR, `${n}.out`)])].map(f => tail(f)).join('\n')
  const deadline = Date.now() + 60_000
  for (;;) {
    const r = client('sinfo', ['-h', '-N', '-o', '%N %t'], undefined, 5000)
    const states = r.stdout.trim().split('\n').filter(l => l !== '').map(l => l.split(' '))
    if (states.length === NODES.length && states.every(s => s[1] === 'idle')) break
    // a node left down/drained by an earlier run's abrupt stop: tell slurmctld it is back
    if (states.some(s => /down|drain|fail/.test(s[1] ?? ''))) client('scontrol', ['update', `nodename=node[1-${NODES.length}]`, 'state=resume'], undefined, 5000)
    if (Date.now() > deadline) throw new Error(`the cluster's nodes did not become idle: ${r.stdout}${r.stderr}\n${logs()}`)
    await sleep(200)
  }
  say(`cluster: ${NODES.join(' ')} idle (SLURM_CONF=${SLURM_CONF})`)
}

export function usage (user: string): string {
  return `
The demo registry and cluster keep running. Use them (as ${user}, or as root):

  su - ${user} -c 'SLURM_CONF=${SLURM_CONF} srun -N3 --container-image=${IMAGE} hostname'

  export SLURM_CONF=${SLURM_CONF}
  srun -N3 --container-image=${IMAGE} hostname
  srun -N1 --container-image=${IMAGE} --container-name=mybox --container-writable sh -c 'echo hello > /hello'
  srun -N1 --container-name=mybox cat /hello        # a named container persists on its node
  sinfo; squeue

Logs: ${SLURM_DIR}/{slurmctld.log,node*/slurmd.log}, ${REGISTRY_DIR}/registry.log
Stop everything: bash ${join(REPO, 'scripts', 'demo.sh')} stop
`
}

/** The demo's proof: srun -N3 with the registry image, as the unprivileged user; prints what it printed. */
function check (): number {
  const user = testUser()
  say(`as ${user.name}: SLURM_CONF=${SLURM_CONF} srun -N3 --container-image=${IMAGE} hostname`)
  const r = client('srun', ['-N3', `--container-image=${IMAGE}`, 'hostname'], user, 120_000)
  process.stdout.write(r.stdout)
  process.stderr.write(r.stderr)
  const names = r.stdout.trim().split('\n').filter(l => l !== '').sort()
  if (r.status === 0 && names.join(' ') === NODES.join(' ')) { say(`OK: ${NODES.length} nodes answered from inside the container`); return 0 }
  say(`FAILED: srun exited ${String(r.status ?? r.signal)}, expected ${NODES.join(', ')}`)
  for (const f of [join(SLURM_DIR, 'slurmctld.log'), ...NODES.map(n => join(SLURM_DIR, n, 'slurmd.log'))]) process.stderr.write(`${tail(f, 10)}\n`)
  return 1
}

function status (): number {
  const ps = demoProcesses()
  for (const p of ps) say(`${p.name}[${p.pid}] ${(cmdline(p.pid) ?? []).join(' ')}`)
  if (ps.length === 0) say('nothing running')
  return ps.length > 0 ? 0 : 1
}

async function main (cmd: string | undefined): Promise<number> {
  if (process.getuid?.() !== 0) throw new Error('run the demo as root (it starts daemons and namespaces)')
  switch (cmd) {
    case 'start': {
      await stopAll()
      mkdirSync(DEMO_DIR, { recursive: true, mode: 0o755 })
      chmodSync(DEMO_DIR, 0o755)
      mkdirSync(SLURM_DIR, { recursive: true, mode: 0o755 })
      testUser() // create enroot-test before anything refers to it
      await startRegistry()
      await seedImage()
      await startCluster()
      return 0
    }
    case 'stop': await stopAll(); say('stopped'); return 0
    case 'check': return check()
    case 'status': return status()
    case 'usage': process.stdout.write(usage(testUser().name)); return 0
    default:
      process.stderr.write('usage: demo.js start|check|stop|status|usage\n')
      return 2
  }
}

const self = fileURLToPath(import.meta.url)
if (resolve(process.argv[1] ?? '') === self) {
  main(process.argv[2]).then(code => { process.exitCode = code }, (err: unknown) => {
    process.stderr.write(`demo: ${err instanceof Error ? err.message : String(err)}\n`)
    process.exitCode = 1
  })
}
