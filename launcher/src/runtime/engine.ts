// Executes a ContainerPlan (spec §5.1 as a checklist): a forked child creates the namespaces and the
// private rootfs and applies the early mounts (phase 1); hooks run here, each joining the child's user
// and mount namespaces; the child then applies hook and late mounts, remounts the rootfs read-only,
// switches root and execs the command (phase 2). The container is that child: its status is ours.
import { makeDirs } from '../util/fs.js'
import { closeSync, existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, read, rmdirSync, rmSync, unlinkSync, writeFileSync, writeSync, chmodSync } from 'node:fs'
import { os } from '../util/builtins.js'
import { dirname, join } from 'node:path'
import { EnrootError } from '../util/errors.js'
import { log } from '../util/log.js'
import { formatEnv, mergeEnv } from '../pipeline/envfile.js'
import { parseFstab } from '../pipeline/fstab.js'
import type { ContainerPlan, HookSpec, MountOp } from './plan-types.js'
import {
  FLAG, MSG_SIZE, NS, decodeRecord, encodeBatch, encodeLower, encodePhase1, encodePhase2, isTerminal, makeStepError, spawnJoined,
  startContainer, startLower, waitChild, type ChildExit, type StatusRecord
} from './native.js'

/**
 * What a built-in hook (HookSpec.builtin) hands back: enroot's hook contract as data. `direct` are the
 * mounts the shell hook made itself (enroot-mount): in place before the next hook runs. `mounts` are the
 * lines it appended to $ENROOT_MOUNTS: mounted after all hooks.
 */
export interface BuiltinHookResult { environ?: string[], direct?: MountOp[], mounts?: MountOp[] }
export interface BuiltinHookContext {
  /** container pid (host view): /proc/PID/root + rootfs reaches the rootfs from the host */
  pid: number
  /** the rootfs path inside the setup mount namespace ($ENROOT_ROOTFS) */
  rootfs: string
  runtimeDir: string
  env: Readonly<Record<string, string>>
  environ: readonly string[]
}

export interface EngineOptions {
  squashfuse?: string
  /** runs HookSpec entries with `builtin` set; without it they run as executables like any hook */
  builtinHook?: (spec: HookSpec, ctx: BuiltinHookContext) => Promise<BuiltinHookResult>
  /** forward SIGINT/SIGTERM/SIGHUP received by this process to the container (default true) */
  forwardSignals?: boolean
  /** told the container's first process once it exists (the Slurm launcher looks for its stopped shell there) */
  onStart?: (pid: number) => void
  /** for a squashfs image in a user namespace: a lower holder of that image (startLowerHolder) to use */
  lower?: LowerHolder
}

/** Who the caller is inside the container's user namespace: root with --remap-root, else itself. */
export function innerIds (plan: Pick<ContainerPlan, 'remapRoot'>): { innerUid: number, innerGid: number } {
  return plan.remapRoot ? { innerUid: 0, innerGid: 0 } : { innerUid: process.geteuid?.() ?? 0, innerGid: process.getegid?.() ?? 0 }
}

/** A user and mount namespace keeping one squashfs image mounted for the containers that join it. */
export interface LowerHolder {
  pid: number
  /** the mount point, in the holder's mount namespace */
  dir: string
  /** the holder's end (it dies with this process, or when killed) */
  ended: Promise<ChildExit>
}

/**
 * Mounts `image` (squashfuse) in a user and mount namespace of its own, as a container's start would, and
 * keeps it so: containers that join it (EngineOptions.lower) skip squashfuse's start and mount and find the
 * image's pages cached. `mntDir` is an empty host directory for its tmpfs. The caller kills it when done.
 */
export async function startLowerHolder (opts: { image: string, mntDir: string, squashfuse?: string, innerUid: number, innerGid: number }): Promise<LowerHolder> {
  const h = startLower(encodeLower({ image: opts.image, mntDir: opts.mntDir, squashfuse: opts.squashfuse ?? '/usr/bin/squashfuse', innerUid: opts.innerUid, innerGid: opts.innerGid }))
  const ended = waitChild(h.pid)
  try {
    const r = await new RecordReader(h.statusFd).next()
    if (r?.type === 'R') return { pid: h.pid, dir: r.path, ended }
    try { process.kill(h.pid, 'SIGKILL') } catch {}
    if (r?.type === 'E') { const native = makeStepError(r.step, r.errno, r.path); throw new EnrootError('SYSCALL', native.message, { cause: native }) }
    throw new EnrootError('SYSCALL', `lower holder for ${opts.image} exited before it was ready`)
  } finally {
    try { closeSync(h.statusFd) } catch {}
  }
}

export interface ContainerResult {
  code: number | null
  signal: NodeJS.Signals | null
  /** the shell convention: code, or 128 + signal number */
  status: number
}

const signalName = (n: number): NodeJS.Signals | undefined =>
  (Object.entries(os().constants.signals) as Array<[NodeJS.Signals, number]>).find(([, v]) => v === n)?.[0]

function toResult (e: ChildExit): ContainerResult {
  if (e.signal !== null) return { code: null, signal: signalName(e.signal) ?? null, status: 128 + e.signal }
  return { code: e.code, signal: null, status: e.code ?? 1 }
}

// ---- runtime directory: private to one start, removed at exit; stale ones of dead starts cleaned ----
const OWNER = '.owner'

function startTime (pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
  } catch { return undefined }
}

/** Remove the runtime directories in parent whose owning start has died (SIGKILL leaves them behind). */
export function cleanStaleRuntimeDirs (parent: string): void {
  let names: string[]
  try { names = readdirSync(parent) } catch { return }
  for (const n of names) {
    const dir = join(parent, n)
    let owner: string
    try { owner = readFileSync(join(dir, OWNER), 'utf8') } catch { continue }
    const [pid, start] = owner.trim().split(' ')
    if (pid === undefined || start === undefined || startTime(Number(pid)) === start) continue
    log.debug(`runtime: removing stale ${dir}`)
    try { rmSync(dir, { recursive: true, force: true }) } catch {}
  }
}

function prepareRuntimeDir (plan: ContainerPlan): void {
  const dir = plan.runtimeDir
  cleanStaleRuntimeDirs(dirname(dir))
  makeDirs(dir, 0o700)
  chmodSync(dir, 0o700)
  // `list --fancy` finds running containers by these two files; `name` first, so that a `.owner` it
  // reads always has its name next to it (in-process callers such as the Slurm launcher get it too).
  writeFileSync(join(dir, 'name'), `${plan.name ?? ''}\n`)
  writeFileSync(join(dir, OWNER), `${process.pid} ${startTime(process.pid) ?? '0'}\n`)
  writeFileSync(join(dir, 'environment'), plan.environ.map(l => `${l}\n`).join(''))
  writeFileSync(join(dir, 'fstab'), '')
  mkdirSync(join(dir, 'mnt'), { recursive: true })
}

/**
 * The runtime directory holds files and empty directories once the container is gone (its mounts lived
 * in the container's namespace): removed entry by entry, which spares every start the load of Node's
 * recursive rm (about 1 ms); anything unexpected falls back to it.
 */
function removeRuntimeDir (dir: string): void {
  try {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) rmdirSync(join(dir, e.name)); else unlinkSync(join(dir, e.name))
    }
    rmdirSync(dir)
  } catch {
    rmSync(dir, { recursive: true, force: true, maxRetries: 2 })
  }
}

// ---- the status pipe: fixed-size records, EOF at exec ----
async function readChunk (fd: number, buf: Buffer, off: number): Promise<number> {
  return await new Promise((resolve, reject) => {
    read(fd, buf, off, buf.length - off, null, (err, n) => { if (err !== null) reject(err); else resolve(n) })
  })
}

/** The status pipe read one record at a time, by the main loop and by hooks waiting for an 'A'. */
class RecordReader {
  private readonly buf = Buffer.alloc(MSG_SIZE)
  constructor (private readonly fd: number) {}
  /** the next record, or undefined at EOF (exec, or the child died) */
  async next (): Promise<StatusRecord | undefined> {
    let got = 0
    for (;;) {
      const n = await readChunk(this.fd, this.buf, got)
      if (n === 0) return undefined
      got += n
      if (got === MSG_SIZE) return decodeRecord(this.buf)
    }
  }
}

/** Mount now, inside the child's namespace, and wait until it is done (or failed). */
type ApplyMounts = (mounts: readonly MountOp[]) => Promise<void>

/**
 * Node raises its RLIMIT_NOFILE soft limit to the hard one at start-up; the container should see the
 * caller's. The caller is our parent (a shell, or Slurm's step daemon): its soft limit is ours when its
 * hard limit is too. 0 when unknown (nothing is changed then).
 */
export function callerNofile (ppid: number = process.ppid): number {
  const parse = (pid: string): [string, string] | undefined => {
    try {
      const m = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'))
      return m === null ? undefined : [m[1] as string, m[2] as string]
    } catch { return undefined }
  }
  const mine = parse('self')
  const parent = parse(String(ppid))
  if (mine === undefined || parent === undefined || parent[1] !== mine[1] || parent[0] === 'unlimited') return 0
  const soft = Number(parent[0])
  return mine[0] === 'unlimited' || soft < Number(mine[0]) ? soft : 0
}

function phase1Flags (plan: ContainerPlan): number {
  let f = 0
  if (!plan.privileged) f |= FLAG.USERNS | FLAG.SECCOMP
  if (plan.remapRoot) f |= FLAG.REMAP
  if (plan.unshare.pid) f |= FLAG.PID
  if (plan.unshare.net) f |= FLAG.NET
  if (plan.unshare.ipc) f |= FLAG.IPC
  if (plan.unshare.uts) f |= FLAG.UTS
  if (plan.writable) f |= FLAG.WRITABLE
  if (plan.login) f |= FLAG.LOGIN
  return f
}

/**
 * SIGTERM and SIGHUP sent to us go to the container. SIGINT too, except when stdin is a terminal: the
 * terminal already delivered it to the whole foreground group, container included, and a second copy
 * would turn one Ctrl-C into two.
 */
function forwardSignals (pid: () => number): () => void {
  const sigs: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP']
  const fromTerminal = isTerminal(0)
  const handler = (sig: NodeJS.Signals): void => {
    if (sig === 'SIGINT' && fromTerminal) return
    try { process.kill(pid(), sig) } catch {}
  }
  for (const s of sigs) process.on(s, handler)
  return () => { for (const s of sigs) process.off(s, handler) }
}

interface HookRun { pid: number, rootfs: string }

async function runHooks (plan: ContainerPlan, run: HookRun, opts: EngineOptions, apply: ApplyMounts): Promise<MountOp[]> {
  const envFile = join(plan.runtimeDir, 'environment')
  const mountsFile = join(plan.runtimeDir, 'fstab')
  const env: Record<string, string> = { ...plan.hookEnv }
  delete env.BASH_ENV
  delete env.ENROOT_NSENTER_PID
  Object.assign(env, { ENROOT_PID: String(run.pid), ENROOT_ROOTFS: run.rootfs, ENROOT_ENVIRON: envFile, ENROOT_MOUNTS: mountsFile })
  const envLines = Object.entries(env).map(([k, v]) => `${k}=${v}`)
  const extraMounts: MountOp[] = []
  // Built-in hooks in a row share one round trip to the child for their direct mounts, applied in hook
  // order before the next executable hook runs (or after the last hook). That keeps enroot's contract
  // (a hook sees the mounts of the hooks before it) for every hook that can look; a built-in hook decides
  // from the image's files and the host, never from another built-in hook's mounts. One round trip
  // instead of three saves about 4 ms of every start. The environment file is read once per such row.
  let pending: MountOp[] = []
  let envText: string | undefined
  const flush = async (): Promise<void> => {
    if (pending.length === 0) return
    const batch = pending
    pending = []
    log.debug(`native: mount batch (${batch.length} mounts of built-in hooks)`)
    await apply(batch)
  }
  for (const hook of plan.hooks) {
    if (hook.builtin !== undefined && opts.builtinHook !== undefined) {
      envText ??= readFileSync(envFile, 'utf8')
      const out = await opts.builtinHook(hook, { pid: run.pid, rootfs: run.rootfs, runtimeDir: plan.runtimeDir, env, environ: formatEnv(envText) })
      if (out.environ !== undefined && out.environ.length > 0) {
        const added = out.environ.map(l => `${l}\n`).join('')
        writeFileSync(envFile, added, { flag: 'a' })
        envText += added
      }
      // enroot's 10-devices and 10-cgroups mounted directly: a later hook that binds into /dev must see them.
      if (out.direct !== undefined) pending.push(...out.direct)
      if (out.mounts !== undefined) extraMounts.push(...out.mounts)
      continue
    }
    await flush()
    envText = undefined
    const argv = hook.argv.length > 0 ? hook.argv : [hook.path]
    log.debug(`hook: ${argv.join(' ')}`)
    const pid = spawnJoined({
      pid: run.pid,
      argv,
      env: envLines,
      cwd: process.cwd(),
      namespaces: plan.privileged ? NS.mnt : NS.user | NS.mnt,
      seccomp: !plan.privileged,
      ambientCaps: !plan.privileged
    })
    const r = toResult(await waitChild(pid))
    if (r.status !== 0) throw new EnrootError('HOOK', `${hook.path} exited with return code ${r.status}`)
  }
  await flush()
  // Hook-appended entries are mounted right after the hooks, pass 0, not substituted (enroot-mount).
  const fstab = parseFstab(readFileSync(mountsFile, 'utf8'), mountsFile, { cwd: process.cwd() })
  return [...extraMounts, ...fstab.filter(e => e.pass === 0).map(e => e.op)]
}

/** Start the container described by plan and wait for it; the result is the container's own status. */
export async function runContainer (plan: ContainerPlan, opts: EngineOptions = {}): Promise<ContainerResult> {
  const rootfs = plan.rootfs.kind === 'dir' ? { kind: 'dir' as const, path: plan.rootfs.path } : { kind: 'squashfs' as const, image: plan.rootfs.image }
  let handle
  try {
    // Encoded first: a plan the wire format refuses (a NUL byte) leaves nothing behind.
    const phase1 = encodePhase1({
      flags: phase1Flags(plan),
      rootfs,
      mntDir: join(plan.runtimeDir, 'mnt'),
      squashfuse: opts.squashfuse ?? '/usr/bin/squashfuse',
      ...innerIds(plan),
      earlyMounts: plan.earlyMounts,
      nofile: callerNofile(),
      ...(opts.lower !== undefined && !plan.privileged ? { lower: { pid: opts.lower.pid, dir: opts.lower.dir } } : {})
    })
    prepareRuntimeDir(plan)
    handle = startContainer(phase1)
  } catch (err) {
    // the directory may not exist (or not be ours): what failed is the error to report, not the cleanup
    try { rmSync(plan.runtimeDir, { recursive: true, force: true }) } catch {}
    throw err
  }
  const child = handle.pid
  // `list --fancy` maps the container's processes to this start by this pid: one process may run several
  // containers (the Slurm launcher), so the owner's pid alone cannot name them.
  try { writeFileSync(join(plan.runtimeDir, 'container'), `${child}\n`) } catch {}
  log.debug(`native: startContainer → pid ${child} (${plan.rootfs.kind === 'dir' ? plan.rootfs.path : plan.rootfs.image})`)
  opts.onStart?.(child)
  let containerPid = child
  const exited = waitChild(child)
  const unforward = opts.forwardSignals === false ? () => {} : forwardSignals(() => child)
  let controlOpen = true
  const closeControl = (): void => { if (controlOpen) { controlOpen = false; try { closeSync(handle.controlFd) } catch {} } }
  let failure: Error | undefined
  let ready = false
  const reader = new RecordReader(handle.statusFd)
  const apply: ApplyMounts = async (mounts) => {
    const batch = encodeBatch(mounts)
    for (let off = 0; off < batch.length;) off += writeSync(handle.controlFd, batch, off)
    for (;;) {
      const r = await reader.next()
      if (r === undefined) throw new EnrootError('SYSCALL', 'container setup exited while mounting hook output')
      if (r.type === 'A') return
      if (r.type === 'W') log.warn(makeStepError(r.step, r.errno, r.path).message)
      if (r.type === 'E') {
        const native = makeStepError(r.step, r.errno, r.path)
        throw new EnrootError('SYSCALL', native.message, { cause: native })
      }
    }
  }
  try {
    try {
      for (let r = await reader.next(); r !== undefined; r = await reader.next()) {
        if (r.type === 'P') containerPid = r.value
        else if (r.type === 'W') log.warn(makeStepError(r.step, r.errno, r.path).message)
        else if (r.type === 'E') {
          const native = makeStepError(r.step, r.errno, r.path)
          failure ??= new EnrootError('SYSCALL', native.message, { cause: native })
        }
        else if (r.type === 'R' && !ready) {
          ready = true
          let hookMounts: MountOp[]
          try {
            hookMounts = await runHooks(plan, { pid: containerPid, rootfs: r.path }, opts, apply)
          } catch (err) {
            failure = err as Error
            try { process.kill(child, 'SIGKILL') } catch {}
            break
          }
          const environ = mergeEnv(formatEnv(readFileSync(join(plan.runtimeDir, 'environment'), 'utf8')))
          const phase2 = encodePhase2({
            mounts: [...hookMounts, ...plan.lateMounts],
            env: environ,
            command: plan.command,
            ...(plan.rc !== undefined ? { rc: plan.rc } : {})
          })
          log.debug(`native: phase 2 (${hookMounts.length} hook mounts, ${plan.lateMounts.length} late mounts, ${environ.length} variables)`)
          try {
            for (let off = 0; off < phase2.length;) off += writeSync(handle.controlFd, phase2, off)
          } catch (err) { failure ??= err as Error }
          closeControl()
        }
      }
    } finally {
      closeControl()
      try { closeSync(handle.statusFd) } catch {}
    }
    if (failure === undefined && !ready) failure = new EnrootError('SYSCALL', 'container setup exited before it was ready')
    const result = toResult(await exited)
    if (failure !== undefined) throw failure
    return result
  } finally {
    unforward()
    removeRuntimeDir(plan.runtimeDir)
  }
}

export interface ExecOptions {
  /** extra KEY=VALUE entries, after the target's initial environment (later wins) */
  env?: string[]
  forwardSignals?: boolean
}

/** `enroot exec PID COMMAND...`: join every namespace of PID that differs from ours, run COMMAND there. */
export async function execInContainer (pid: number, command: string[], opts: ExecOptions = {}): Promise<ContainerResult> {
  if (!existsSync(`/proc/${pid}`)) throw new EnrootError('NOT_FOUND', `Process not found: ${pid}`)
  let initial: string[]
  try { initial = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(l => l.includes('=')) } catch (err) {
    throw new EnrootError('SYSCALL', `failed to read environment of ${pid}: ${(err as Error).message}`, { cause: err })
  }
  const env = mergeEnv(initial, opts.env ?? [])
  const sameUserNs = (() => { try { return readlinkNs('self') === readlinkNs(String(pid)) } catch { return true } })()
  const child = spawnJoined({
    pid,
    argv: command,
    env,
    cwdFromTarget: true,
    namespaces: NS.user | NS.pid | NS.mnt | NS.net | NS.ipc | NS.uts | NS.cgroup,
    seccomp: !sameUserNs,
    ambientCaps: false,
    // the caller's soft limit, as start gives the container (not the one Node raised)
    nofile: callerNofile()
  })
  const unforward = opts.forwardSignals === false ? () => {} : forwardSignals(() => child)
  try { return toResult(await waitChild(child)) } finally { unforward() }
}

function readlinkNs (pid: string): string {
  return readlinkSync(`/proc/${pid}/ns/user`)
}
