// A real multi-node Slurm cluster on this one machine, for the shim's integration tests.
//
// One munged (own key, socket and pid file), one slurmctld and N slurmd "nodes". Each slurmd runs in its
// own UTS + mount namespace (`unshare --uts --mount --propagation slave`) with hostname nodeN, a per-node
// directory bind-mounted onto NODE_LOCAL (the node's local scratch: plays /tmp, /run, local NVMe) and a
// hosts file that maps every nodeN to 127.0.0.1. slurmstepd and the tasks inherit both namespaces, so
// `hostname` in a job prints the node name and NODE_LOCAL really is per node. `shared` is the shared
// filesystem: any path outside those bind mounts. Everything listens on 127.0.0.1 on free ports, so several
// clusters (other test files, other engineers) can run side by side. Facts: /work/shared/spec/slurm-notes.md.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, mkdirSync, writeFileSync, chmodSync, chownSync, existsSync, rmSync, readFileSync, openSync, closeSync } from 'node:fs'
import { createServer } from 'node:net'
import { basename, join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { testUser, IS_ROOT, REPO, type RunResult } from './env.js'
import { pidsWith } from './procs.js'

/** The fixed path where every node sees its own local scratch directory. */
export const NODE_LOCAL = '/var/tmp/enroot-node-local'
const DAEMON_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

export interface ClusterOptions {
  /** plugstack.conf text; empty (no plugins) by default. Re-read by every new step: see setPlugstack. */
  plugstack?: string
  /** Number of nodes, node1..nodeN (default 3). */
  nodes?: number
  /** CPUs per node (default 4; SlurmdParameters=config_overrides lets us claim more than the machine has). */
  cpus?: number
  /** Extra environment for the slurmds (and so slurmstepd), e.g. LD_PRELOAD for the ASan build. */
  daemonEnv?: Record<string, string>
}

/**
 * Job launcher services (enroot slurm-service) that this cluster's jobs left: the epilog ends them only
 * where slurmd saw the plugin's epilog at its start (a plugstack set later has none), otherwise they end
 * after their idle time. Found by the node-local bind mounts of this cluster in their mount table.
 */
function endServices (dir: string): void {
  for (const pid of pidsWith('slurm-service')) {
    // the directory's own name: mountinfo shows bind sources relative to their filesystem's root
    try { if (readFileSync(`/proc/${pid}/mountinfo`, 'utf8').includes(basename(dir))) process.kill(pid, 'SIGTERM') } catch {}
  }
}

export interface JobOptions {
  /** Extra environment for the client (merged over a minimal one: PATH, HOME, USER, LANG, SLURM_CONF). */
  env?: Record<string, string>
  /** Working directory of the client, and therefore of the job (default: the shared directory). */
  cwd?: string
  /** Kill the client after this many milliseconds (default 60 s). */
  timeoutMs?: number
  /** Run as root instead of the test user. */
  asRoot?: boolean
}

export interface Cluster {
  readonly dir: string
  readonly conf: string
  readonly plugstackPath: string
  /** A directory every node sees at the same path, owned by the test user. */
  readonly shared: string
  readonly nodeNames: string[]
  srun: (args: readonly string[], opts?: JobOptions) => Promise<RunResult>
  sbatch: (args: readonly string[], opts?: JobOptions) => Promise<RunResult>
  /** Any Slurm client (sinfo, squeue, scontrol, salloc, ...) with SLURM_CONF set. */
  client: (cmd: string, args: readonly string[], opts?: JobOptions) => Promise<RunResult>
  /** Replace plugstack.conf; new steps read it at start (slurmd-context callbacks would need a restart). */
  setPlugstack: (text: string) => void
  /** The host path of a node's NODE_LOCAL directory. */
  nodeLocal: (node: string) => string
  /** The tail of every daemon log, for failure messages. */
  logs: () => string
  stop: () => Promise<void>
}

export class ClusterUnavailable extends Error {}

function which (cmd: string): boolean {
  try { execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }); return true } catch { return false }
}

/** Why a cluster cannot be started here, or undefined when it can. */
export function clusterUnavailableReason (): string | undefined {
  if (!IS_ROOT) return 'the Slurm cluster needs root (daemons, namespaces)'
  for (const cmd of ['munged', 'slurmctld', 'slurmd', 'srun', 'sinfo', 'unshare']) {
    if (!which(cmd)) return `${cmd} is not installed`
  }
  try { execFileSync('getent', ['passwd', 'munge'], { stdio: 'ignore' }) } catch { return 'the munge user is missing' }
  return undefined
}

/** n TCP ports free on 127.0.0.1 right now (the cluster's daemons bind them next). */
export async function freePorts (n: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: n }, async () => await new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => resolve(s))
  })))
  const ports = servers.map(s => (s.address() as { port: number }).port)
  await Promise.all(servers.map(async s => await new Promise(resolve => s.close(resolve))))
  return ports
}

const sleep = async (ms: number): Promise<void> => await new Promise(resolve => setTimeout(resolve, ms))

export function getentIds (name: string): { uid: number, gid: number } {
  const f = execFileSync('getent', ['passwd', name], { encoding: 'utf8' }).trim().split(':')
  return { uid: Number(f[2]), gid: Number(f[3]) }
}

export interface SlurmConfOptions {
  cpus?: number
  clusterName?: string
  /** slurmd logs at verbose (the suite reads them when a test fails) */
  verbose?: boolean
  /** a first comment line */
  comment?: string
}

/**
 * slurm.conf of a cluster on 127.0.0.1 (the suite's and the demo's, scripts/demo.ts): slurmctld on
 * ctldPort, nodes node1..nodeN on nodePorts, every file under dir, plugstack.conf in dir.
 */
export function slurmConf (dir: string, ctldPort: number, nodePorts: number[], o: SlurmConfOptions = {}): string {
  const nodes = nodePorts.map((port, i) =>
    `NodeName=node${i + 1} NodeAddr=127.0.0.1 Port=${port} CPUs=${o.cpus ?? 4} RealMemory=1000 State=UNKNOWN`)
  return [
    ...(o.comment === undefined ? [] : [`# ${o.comment}`]),
    `ClusterName=${o.clusterName ?? `enroot${ctldPort}`}`,
    'SlurmctldHost=localhost(127.0.0.1)',
    `SlurmctldPort=${ctldPort}`,
    'SlurmUser=root',
    'SlurmdUser=root',
    'AuthType=auth/munge',
    'CredType=cred/munge',
    `AuthInfo=socket=${join(dir, 'munge-socket', 'munge.socket')}`,
    'CommunicationParameters=NoInAddrAny,NoCtldInAddrAny',
    'ProctrackType=proctrack/linuxproc',
    'TaskPlugin=task/none',
    'SelectType=select/cons_tres',
    'SelectTypeParameters=CR_Core',
    'JobAcctGatherType=jobacct_gather/none',
    'AccountingStorageType=accounting_storage/none',
    'SlurmdParameters=config_overrides',
    `SlurmdSpoolDir=${dir}/%n/spool`,
    `SlurmdPidFile=${dir}/%n/slurmd.pid`,
    `SlurmdLogFile=${dir}/%n/slurmd.log`,
    `SlurmctldPidFile=${dir}/slurmctld.pid`,
    `SlurmctldLogFile=${dir}/slurmctld.log`,
    `StateSaveLocation=${dir}/state`,
    `PlugStackConfig=${dir}/plugstack.conf`,
    'MpiDefault=none',
    'SchedulerType=sched/builtin',
    'ReturnToService=2',
    'KillWait=2',
    'InactiveLimit=0',
    'MinJobAge=5',
    ...(o.verbose === false ? [] : ['SlurmdDebug=verbose']),
    ...nodes,
    `PartitionName=debug Nodes=node[1-${nodePorts.length}] Default=YES MaxTime=INFINITE State=UP`,
    ''
  ].join('\n')
}

function runProcess (cmd: string, args: readonly string[], env: Record<string, string>, opts: JobOptions, user?: { uid: number, gid: number }): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env,
      cwd: opts.cwd,
      ...(user !== undefined ? { uid: user.uid, gid: user.gid } : {}),
      stdio: ['ignore', 'pipe', 'pipe']
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    const timer = setTimeout(() => { stderr += `\n[slurm-cluster] ${cmd} timed out, killed\n`; child.kill('SIGKILL') }, opts.timeoutMs ?? 60_000)
    child.on('error', (e) => { clearTimeout(timer); reject(e) })
    child.on('close', (status, signal) => { clearTimeout(timer); resolve({ status, signal, stdout, stderr }) })
  })
}

const CACHE_ACCOUNT = 'enroot-cache'

/**
 * The dedicated account that writes a cluster-wide image cache (plugstack cache_user=): a system account
 * with no login and no home, created on first use like the test user.
 */
export function cacheAccount (): { name: string, uid: number, gid: number } {
  const lookup = (): { uid: number, gid: number } | undefined => { try { return getentIds(CACHE_ACCOUNT) } catch { return undefined } }
  let ids = lookup()
  if (ids === undefined) {
    try { execFileSync('useradd', ['--system', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', CACHE_ACCOUNT], { stdio: 'ignore' }) } catch {}
    ids = lookup()
    if (ids === undefined) throw new Error(`could not create the cache account ${CACHE_ACCOUNT}`)
  }
  return { name: CACHE_ACCOUNT, ...ids }
}

/** Builds a target of spank/Makefile (the shim, or its ASan build); returns its path. */
export function buildShim (target: 'spank_enroot.so' | 'spank_enroot_asan.so' = 'spank_enroot.so'): string {
  execFileSync('make', ['-s', '-C', join(REPO, 'spank'), target], { stdio: ['ignore', 'ignore', 'pipe'] })
  return join(REPO, 'spank', target)
}

/** Start munged, slurmctld and the slurmd nodes; resolves once sinfo shows every node idle. */
export async function startCluster (options: ClusterOptions = {}): Promise<Cluster> {
  const why = clusterUnavailableReason()
  if (why !== undefined) throw new ClusterUnavailable(why)
  const nodeCount = options.nodes ?? 3
  const user = testUser()
  const munge = getentIds('munge')
  const dir = mkdtempSync(join(process.env.ENROOT_TEST_TMP ?? '/tmp', 'enroot-slurm-'))
  chmodSync(dir, 0o755)
  const procs: ChildProcess[] = []
  const nodeNames = Array.from({ length: nodeCount }, (_, i) => `node${i + 1}`)

  const stop = async (): Promise<void> => {
    // slurmds and slurmctld first (they still talk to munge while exiting), munged last.
    const order = [...procs.slice(2), procs[1], procs[0]].filter((p): p is ChildProcess => p !== undefined)
    const exited = (p: ChildProcess): boolean => p.exitCode !== null || p.signalCode !== null
    const waitAll = async (ps: ChildProcess[], ms: number): Promise<void> => {
      const deadline = Date.now() + ms
      while (ps.some(p => !exited(p)) && Date.now() < deadline) await sleep(50)
    }
    const daemons = order.slice(0, -1)
    endServices(dir)
    for (const p of daemons) if (!exited(p)) p.kill('SIGTERM')
    await waitAll(daemons, 5000)
    for (const p of daemons) if (!exited(p)) p.kill('SIGKILL')
    await waitAll(daemons, 1000)
    const m = order[order.length - 1]
    if (m !== undefined && !exited(m)) { m.kill('SIGTERM'); await waitAll([m], 3000); if (!exited(m)) m.kill('SIGKILL') }
    process.removeListener('exit', onExit)
    if (process.env.ENROOT_TEST_KEEP_CLUSTER !== '1') rmSync(dir, { recursive: true, force: true, maxRetries: 3 })
  }

  // Safety net: never leave daemons behind when the test process dies without calling stop().
  const onExit = (): void => { for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL') }
  process.once('exit', onExit)

  try {
    // munge: key directory 0700 owned by munge; the socket directory must be reachable by every user.
    const mungeDir = join(dir, 'munge')
    const sockDir = join(dir, 'munge-socket')
    mkdirSync(mungeDir, { mode: 0o700 })
    mkdirSync(sockDir, { mode: 0o755 })
    chownSync(mungeDir, munge.uid, munge.gid)
    chownSync(sockDir, munge.uid, munge.gid)
    const key = join(mungeDir, 'munge.key')
    writeFileSync(key, randomBytes(1024), { mode: 0o400 })
    chownSync(key, munge.uid, munge.gid)
    const socket = join(sockDir, 'munge.socket')
    procs.push(spawn('munged', ['--foreground', `--key-file=${key}`, `--socket=${socket}`, `--pid-file=${join(mungeDir, 'munged.pid')}`,
      `--log-file=${join(mungeDir, 'munged.log')}`, `--seed-file=${join(mungeDir, 'seed')}`, '--num-threads=2'],
    { uid: munge.uid, gid: munge.gid, env: { PATH: DAEMON_PATH }, stdio: ['ignore', 'ignore', 'ignore'] }))
    for (let i = 0; !existsSync(socket); i++) {
      if (i > 100 || procs[0]?.exitCode !== null) throw new Error(`munged did not start (see ${mungeDir})`)
      await sleep(20)
    }

    const ports = await freePorts(nodeCount + 1)
    const conf = join(dir, 'slurm.conf')
    writeFileSync(conf, slurmConf(dir, ports[0] as number, ports.slice(1), { cpus: options.cpus ?? 4 }), { mode: 0o644 })
    const plugstackPath = join(dir, 'plugstack.conf')
    writeFileSync(plugstackPath, options.plugstack ?? '', { mode: 0o644 })
    mkdirSync(join(dir, 'state'))
    const hosts = join(dir, 'hosts')
    writeFileSync(hosts, `127.0.0.1 localhost ${nodeNames.join(' ')}\n::1 localhost ip6-localhost ip6-loopback\n`, { mode: 0o644 })
    const shared = join(dir, 'shared')
    mkdirSync(shared, { mode: 0o755 })
    chownSync(shared, user.uid, user.gid)
    mkdirSync(NODE_LOCAL, { recursive: true })

    const daemonEnv = { PATH: DAEMON_PATH, HOME: '/root', LANG: 'C.UTF-8' }
    const slurmdEnv = { ...daemonEnv, ...options.daemonEnv }
    const fds: number[] = []
    const out = (name: string): number => { const fd = openSync(join(dir, name), 'a'); fds.push(fd); return fd }
    procs.push(spawn('slurmctld', ['-D', '-f', conf], { env: daemonEnv, stdio: ['ignore', out('slurmctld.out'), out('slurmctld.out')] }))
    for (const node of nodeNames) {
      const nd = join(dir, node)
      mkdirSync(join(nd, 'spool'), { recursive: true })
      mkdirSync(join(nd, 'local'))
      chmodSync(join(nd, 'local'), 0o1777)
      const script = `hostname ${node} && mount --bind ${nd}/local ${NODE_LOCAL} && mount --bind ${hosts} /etc/hosts && exec slurmd -D -N ${node} -f ${conf}`
      procs.push(spawn('unshare', ['--uts', '--mount', '--propagation', 'slave', 'sh', '-c', script],
        { env: slurmdEnv, stdio: ['ignore', out(`${node}.out`), out(`${node}.out`)] }))
    }
    for (const fd of fds) closeSync(fd)

    const client = async (cmd: string, args: readonly string[], opts: JobOptions = {}): Promise<RunResult> => {
      const env = {
        PATH: DAEMON_PATH,
        HOME: opts.asRoot === true ? '/root' : user.home,
        USER: opts.asRoot === true ? 'root' : user.name,
        LANG: 'C.UTF-8',
        SLURM_CONF: conf,
        PWD: opts.cwd ?? shared, // as a shell would export it; the job env carries it to the nodes
        ...opts.env
      }
      return await runProcess(cmd, args, env, { cwd: shared, ...opts }, opts.asRoot === true ? undefined : user)
    }

    const cluster: Cluster = {
      dir,
      conf,
      plugstackPath,
      shared,
      nodeNames,
      client,
      srun: async (args, opts) => await client('srun', args, opts),
      sbatch: async (args, opts) => await client('sbatch', args, opts),
      setPlugstack: (text) => { writeFileSync(plugstackPath, text, { mode: 0o644 }) },
      nodeLocal: (node) => join(dir, node, 'local'),
      logs: () => ['slurmctld.log', ...nodeNames.map(n => join(n, 'slurmd.log')), ...nodeNames.map(n => `${n}.out`)]
        .map(f => { try { return `==> ${f}\n${readFileSync(join(dir, f), 'utf8').split('\n').slice(-30).join('\n')}` } catch { return '' } })
        .join('\n'),
      stop
    }

    const deadline = Date.now() + 30_000
    for (;;) {
      const dead = procs.find(p => p.exitCode !== null)
      if (dead !== undefined) throw new Error(`a Slurm daemon exited early (${dead.spawnargs.join(' ')})\n${cluster.logs()}`)
      const r = await client('sinfo', ['-h', '-N', '-o', '%N %t'], { asRoot: true, timeoutMs: 5000 })
      const states = r.stdout.trim().split('\n').filter(l => l !== '').map(l => l.split(' '))
      if (states.length === nodeCount && states.every(s => s[1] === 'idle')) break
      if (Date.now() > deadline) throw new Error(`cluster nodes did not become idle: ${r.stdout}${r.stderr}\n${cluster.logs()}`)
      await sleep(100)
    }
    return cluster
  } catch (err) {
    await stop()
    throw err
  }
}

/**
 * A fresh directory on the cluster's shared filesystem, owned by the test user, where
 * test/slurm/fixtures/*-launcher.sh record their calls, and the job environment that points them there.
 */
export function recordingDir (cluster: Pick<Cluster, 'shared'>): { dir: string, env: Record<string, string> } {
  const dir = mkdtempSync(join(cluster.shared, 'rec-'))
  const u = testUser()
  chownSync(dir, u.uid, u.gid)
  return { dir, env: { FAKE_RECORD_DIR: dir } }
}
