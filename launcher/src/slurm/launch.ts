// The per-node launcher, run by spank_enroot.so once per node per step (doc/slurm.md). Everything happens
// in this one Node process: no `enroot` subprocess (each costs a Node start-up, 50-100 ms).
//   slurm-import:   run as the cluster cache's dedicated account: fill the shared cache, nothing else;
//   slurm-launch:   as the job user: import through the cache, make the root filesystem (extract it, or
//                   mount the cached squashfs directly), start the container ONCE with a command that stops
//                   itself, answer "READY <pid>" on the status fd, and stay as the container's supervisor
//                   until the shim kills it at step end;
//   slurm-teardown: after the step's last local task: --container-save export, remove unnamed containers;
//   slurm-epilog:   container_scope=job: remove this job's containers on the node.
import { makeDirs } from '../util/fs.js'
import { childProcess } from '../util/builtins.js'
import { closeSync, existsSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { userInfo } from 'node:os'
import type { Command } from '../commands/types.js'
import type { Parsed } from '../util/args.js'
import type { Config } from '../config/load.js'
import { EnrootError } from '../util/errors.js'
import { containerPath, dataPath, fixPerms, isDir, isSquashfs, removeTree } from '../runtime/rootfs-store.js'
import type { ImageFilesText } from '../image/import.js'
import type { LowerHolder } from '../runtime/engine.js'
import {
  STEP_OPTIONS, containerName, errorLine, imageSource, isJobContainer, parseStepRequest, readyLine, savePath,
  NO_ENTRYPOINT_RC, startData, type StepRequest
} from './protocol.js'

const usage = 'Usage: enroot slurm-import|slurm-launch|slurm-teardown|slurm-epilog [options] (internal: run by spank_enroot.so)\n'
const STOP_COMMAND = ['sh', '-c', 'kill -STOP $$ ; exit 0']
const START_TIMEOUT_MS = 10 * 60_000
// How often the launcher looks for the stopped container while it starts: every step waits half of it on
// average, and one look costs a few /proc reads (the container's own processes only).
const STOP_POLL_MS = 3

const say = (msg: string): void => { process.stderr.write(`pyxis: ${msg}\n`) }

function runtimeDir (r: StepRequest): string {
  const dir = join(r.runtimePath, String(process.getuid?.() ?? 0))
  makeDirs(dir, 0o700)
  return dir
}

/** `--cache=shared:/dir`: the cluster cache (read-only to job users, trust.ts checks it); else the user's own. */
function withCache (cfg: Config, cache: string): Config {
  return cache.startsWith('shared:') ? cfg.with({ ENROOT_CACHE_PATH: cache.slice('shared:'.length) }) : cfg
}

/** What slurm-launch and slurm-teardown start from: the request, its cache, the container's name. */
export function step (args: Parsed, baseCfg: Config): { r: StepRequest, cfg: Config, name: string } {
  const r = parseStepRequest(args)
  return { r, cfg: withCache(baseCfg, r.cache), name: containerName(r) }
}

/** The status fd (3), reopened close-on-exec so that neither the container nor squashfuse inherit it. */
function openStatus (r: StepRequest): number | undefined {
  if (r.statusFd === undefined) return undefined
  const fd = openSync(`/proc/self/fd/${r.statusFd}`, 'w')
  closeSync(r.statusFd)
  return fd
}

function status (fd: number | undefined, line: string): void {
  if (fd === undefined) { process.stdout.write(line); return }
  try { writeSync(fd, line) } finally { closeSync(fd) }
}

interface Rootfs {
  /** what `start` gets: a container name, or a squashfs file started directly (squashfuse + overlay) */
  arg: string
  /** a directory this step made and must remove if the start fails */
  made?: string
  /** a temporary squashfs of this step (an image built privately when the cache is read-only to us) */
  temporary?: string
  /** a running named container to attach to */
  running?: number
  /** the image's /etc/environment and /etc/fstab, known from the import (no unsquashfs at start) */
  imageFiles?: ImageFilesText
}

/** The image as a squashfs file: a cache entry (no copy), or the user's file. */
async function imageFile (r: StepRequest, cfg: Config, image: string): Promise<{ path: string, temporary: boolean, files?: ImageFilesText }> {
  const src = imageSource(image, r.cwd)
  if (src.kind === 'squashfs') {
    if (!isSquashfs(src.path)) throw new EnrootError('IMAGE', `failed to create container filesystem for image: ${image}`, { hint: `not a squashfs file: ${src.path}` })
    return { path: src.path, temporary: false }
  }
  if (r.totalTasks <= 1) say(`importing docker image: ${image}`)
  const out = join(runtimeDir(r), `${r.job}.${r.step}.squashfs`)
  rmSync(out, { force: true })
  const { importImage } = await import('../image/import.js')
  let res
  try {
    res = await importImage(cfg, { uri: src.uri, output: out, cwd: r.cwd ?? '/', reuseEntry: true })
  } catch (err) {
    throw new EnrootError('IMAGE', `failed to import docker image: ${image}: ${(err as Error).message}`, { cause: err })
  }
  say(`imported docker image: ${image}`)
  return { path: res.output, temporary: res.method !== 'entry', ...(res.files === undefined ? {} : { files: res.files }) }
}

/** enroot create, in process: unsquashfs into the data path (node-local scratch), then enroot's fixperms. */
function extract (cfg: Config, image: string, squashfs: string, rootfs: string): void {
  makeDirs(dataPath(cfg), 0o700)
  const procs = cfg.int('ENROOT_MAX_PROCESSORS')
  const r = childProcess().spawnSync('unsquashfs', ['-no-progress', ...(procs > 0 ? ['-processors', String(procs)] : []), '-user-xattrs', '-d', rootfs, squashfs],
    { stdio: ['ignore', 2, 2] })
  if (r.status !== 0) {
    removeTree(rootfs)
    throw new EnrootError('IMAGE', `failed to create container filesystem for image: ${image}`)
  }
  fixPerms(rootfs)
}

/** Decides and makes the root filesystem; for a running named container, returns its pid to join. */
async function prepare (r: StepRequest, cfg: Config, name: string): Promise<Rootfs> {
  const path = containerPath(cfg, name)
  if (r.name !== undefined) {
    const exists = isDir(path)
    const { containerProcesses } = await import('../commands/list.js')
    let running = containerProcesses(dataPath(cfg), cfg.get('ENROOT_RUNTIME_PATH') ?? '').get(name)?.[0]?.pid
    if (r.name.flag === 'create' && exists) throw new EnrootError('EXISTS', 'error: "create" flag was passed to --container-name but the container already exists')
    if (r.name.flag === 'exec' && running === undefined) throw new EnrootError('INVALID', 'error: "exec" flag was passed to --container-name but the container is not running')
    if (r.name.flag === 'no_exec') running = undefined
    if (running !== undefined) { say('reusing existing container namespaces'); return { arg: name, running } }
    if (exists) { say('reusing existing container filesystem'); return { arg: name } }
    if (r.image === undefined) throw new EnrootError('NOT_FOUND', `error: a container with name "${name}" does not exist, and --container-image is not set`)
  }
  if (r.image === undefined) throw new EnrootError('USAGE', 'slurm protocol: --image or --name is required')
  const img = await imageFile(r, cfg, r.image)
  // squashfuse: nothing to extract, changes live in memory; only for containers that end with the step
  // and whose filesystem nobody saves (pyxis's use_squashfuse rule).
  if (r.useSquashfuse && r.name === undefined && r.save === undefined) {
    say(`skipping container creation (squashfuse enabled): ${name}`)
    return { arg: img.path, ...(img.temporary ? { temporary: img.path } : {}), ...(img.files === undefined ? {} : { imageFiles: img.files }) }
  }
  say(`creating container filesystem: ${name}`)
  try {
    if (isDir(path)) removeTree(path) // a leftover of a killed step with the same job.step name
    extract(cfg, r.image, img.path, path)
  } finally {
    if (img.temporary) rmSync(img.path, { force: true })
  }
  return { arg: name, made: path }
}

function procStat (pid: number): { state: string, ppid: number } | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ')
    return { state: f[0] as string, ppid: Number(f[1]) }
  } catch { return undefined }
}

/** A process's children, from /proc/PID/task/TID/children (no scan of all of /proc); undefined if unsupported. */
function childrenOf (pid: number): number[] | undefined {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap(tid =>
      readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ').filter(x => x !== '').map(Number))
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' && existsSync(`/proc/${pid}`) ? undefined : []
  }
}

/**
 * The stopped process among root and its descendants: the container's `sh -c 'kill -STOP $$'`. Polled
 * while the container starts, so it walks the process tree down from root rather than reading every
 * /proc/PID/stat.
 */
function stoppedDescendant (root: number): number | undefined {
  let children = (pid: number): number[] => childrenOf(pid) ?? []
  if (childrenOf(root) === undefined) {
    // A kernel without CONFIG_PROC_CHILDREN: one scan of /proc for the parent links.
    const map = new Map<number, number[]>()
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue
      const st = procStat(Number(d))
      if (st !== undefined) map.set(st.ppid, [...(map.get(st.ppid) ?? []), Number(d)])
    }
    children = (pid) => map.get(pid) ?? []
  }
  const queue = [root]
  for (let pid = queue.shift(); pid !== undefined; pid = queue.shift()) {
    if (procStat(pid)?.state === 'T') return pid
    queue.push(...children(pid))
  }
  return undefined
}

/**
 * Starts the container in this process (buildPlan + runContainer, as `enroot start --conf F NAME sh -c
 * 'kill -STOP $$'` with pyxis's configuration script given as data); resolves with the stopped container
 * pid and the promise of the container's end.
 */
/** The launcher service's image holders (lower-holders.ts): a squashfs image's lower layer, shared by its steps. */
export type LowerProvider = (image: string, innerUid: number, innerGid: number) => Promise<LowerHolder | undefined>

async function start (r: StepRequest, cfg: Config, rootfs: Rootfs, name: string, lower?: LowerProvider): Promise<{ pid: number, ended: Promise<unknown> }> {
  const rcLocal = join(runtimeDir(r), `${r.job}.${r.step}.rc.local`)
  if (!r.entrypoint) writeFileSync(rcLocal, NO_ENTRYPOINT_RC, { mode: 0o644 })
  say(`starting container: ${name}`)
  const hint = r.entrypoint ? '\n        if the image has an unusual entrypoint, try using --no-container-entrypoint' : ''
  try {
    const { buildPlan } = await import('../runtime/plan.js')
    const confData = { ...startData(r, process.env, rcLocal), origin: '--container-mounts' }
    const { plan } = buildPlan({ rootfs: rootfs.arg, ...(rootfs.imageFiles === undefined ? {} : { imageFiles: rootfs.imageFiles }), confData, command: STOP_COMMAND, cwd: r.cwd ?? '/', uid: process.geteuid?.() ?? 0, instance: `slurm.${r.job}.${r.step}` }, cfg)
    const { innerIds, runContainer } = await import('../runtime/engine.js')
    const { engineBuiltinHook } = await import('../pipeline/builtin-hooks/apply.js')
    // Signals are ours to handle: a SIGTERM forwarded to a stopped shell would wait for a SIGCONT.
    // The search starts at the container's first process: not at this one, whose other children (other
    // steps' containers in the launcher service, their squashfuse) it would read through every time.
    let root: number | undefined
    const { innerUid, innerGid } = innerIds(plan)
    const holder = plan.rootfs.kind === 'squashfs' && !plan.privileged && lower !== undefined
      ? await lower(plan.rootfs.image, innerUid, innerGid)
      : undefined
    const ended = runContainer(plan, { builtinHook: engineBuiltinHook, forwardSignals: false, onStart: pid => { root = pid }, ...(holder === undefined ? {} : { lower: holder }) })
    return await new Promise((resolve, reject) => {
      const deadline = Date.now() + START_TIMEOUT_MS
      let done = false
      const timer = setInterval(() => {
        const pid = root === undefined ? undefined : stoppedDescendant(root)
        if (pid !== undefined) { done = true; clearInterval(timer); resolve({ pid, ended }) } else if (Date.now() > deadline) {
          clearInterval(timer)
          reject(new EnrootError('INTERRUPTED', 'container start timed out'))
        }
      }, STOP_POLL_MS)
      ended.then((res) => {
        if (done) return
        clearInterval(timer)
        const { code, signal } = res
        if (code === 0) reject(new EnrootError('SYSCALL', `container exited too soon${hint}`))
        else reject(new EnrootError('SYSCALL', signal !== null ? `container start terminated with signal ${signal}${hint}` : `container start failed with error code: ${code ?? 1}${hint}`))
      }, (err: unknown) => {
        if (done) return
        clearInterval(timer)
        reject(new EnrootError('SYSCALL', `container start failed: ${(err as Error).message}${hint}`, { cause: err }))
      })
    })
  } finally {
    // bound into the container already (a mount holds the file), or never needed
    rmSync(rcLocal, { force: true })
  }
}

/** A step's container once it is ready: how to end it early, and the end of its supervision. */
export interface LaunchedStep {
  /** kills the container now (the shim went away before the step ended) */
  stop: () => void
  /** resolves once the container has ended and what the step made is removed */
  finished: Promise<void>
}

/**
 * slurm-launch's work, shared by the one-step launcher and the node's launcher service (service.ts):
 * prepare and start the container, answer the status line, and supervise it.
 */
export async function launchStep (r: StepRequest, cfg: Config, name: string, answer: (line: string) => void, lower?: LowerProvider): Promise<LaunchedStep> {
  let rootfs: Rootfs | undefined
  try {
    const began = Date.now()
    rootfs = await prepare(r, cfg, name)
    const prepared = Date.now()
    if (rootfs.running !== undefined) {
      if (r.mounts.length > 0) say('ignoring --container-mounts when attaching to a running container')
      answer(readyLine(rootfs.running, true))
      return { stop: () => {}, finished: Promise.resolve() }
    }
    const { pid, ended } = await start(r, cfg, rootfs, name, lower)
    say(`completed container setup in ${Date.now() - began} ms (image and root filesystem ${prepared - began} ms, start ${Date.now() - prepared} ms)`)
    // From now on only supervision: the container dies with its parent (PR_SET_PDEATHSIG), and the shim
    // ends it at step end. A signal for this process ends the container at once.
    const stop = (): void => { try { process.kill(pid, 'SIGKILL') } catch {} }
    const signals = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const
    for (const s of signals) process.on(s, stop)
    answer(readyLine(pid, false))
    const made = rootfs
    const finished = ended.catch(() => {}).then(() => {
      for (const s of signals) process.off(s, stop)
      if (made.temporary !== undefined) rmSync(made.temporary, { force: true })
      // The step is over for this node: an unnamed container's filesystem goes now, unless slurm-teardown
      // must export it first (--container-save); the shim then skips that extra process altogether.
      if (made.made !== undefined && r.name === undefined && r.save === undefined) removeTree(made.made)
    })
    return { stop, finished }
  } catch (err) {
    answer(errorLine(err instanceof Error ? err.message : String(err)))
    // A filesystem made for this step only must not outlive its failed start (named ones are kept, as pyxis).
    if (rootfs?.made !== undefined && r.name === undefined) removeTree(rootfs.made)
    if (rootfs?.temporary !== undefined) rmSync(rootfs.temporary, { force: true })
    throw err
  }
}

const launch: Command = {
  usage,
  options: STEP_OPTIONS,
  async run (args, baseCfg) {
    const { r, cfg, name } = step(args, baseCfg)
    const fd = openStatus(r)
    const launched = await launchStep(r, cfg, name, line => { status(fd, line) })
    // Later steps of this job on this node go to a launcher service instead of a Node start each.
    const service = r.service === undefined ? undefined : (await import('./service-spawn.js')).spawnService(r.service, r.serviceIdle)
    await launched.finished
    await service
    return 0
  }
}

/** As the shared cache's own account: download and convert into the cache, nothing else. */
const importStep: Command = {
  usage,
  options: STEP_OPTIONS,
  async run (args, baseCfg) {
    const r = parseStepRequest(args)
    if (!r.cache.startsWith('shared:') || r.image === undefined) throw new EnrootError('USAGE', 'slurm protocol: slurm-import needs --cache=shared:DIR and --image')
    const cfg = withCache(baseCfg, r.cache)
    const src = imageSource(r.image, undefined)
    if (src.kind !== 'registry') return 0
    const out = join(cfg.get('ENROOT_TEMP_PATH') ?? '/tmp', `enroot-slurm-import.${process.pid}.sqsh`)
    const { importImage } = await import('../image/import.js')
    const res = await importImage(cfg, { uri: src.uri, output: out, cwd: '/', reuseEntry: true })
    // Not an entry: the cache refused us (not its owner); nothing was shared, and the copy is not needed.
    if (res.method !== 'entry') { rmSync(out, { force: true }); throw new EnrootError('CACHE', `the shared cache is not writable: ${cfg.get('ENROOT_CACHE_PATH') ?? ''}`) }
    return 0
  }
}

const teardown: Command = {
  usage,
  options: STEP_OPTIONS,
  async run (args, baseCfg) {
    const { r, cfg, name } = step(args, baseCfg)
    const path = containerPath(cfg, name)
    let failed = false
    if (r.save !== undefined && r.allStarted) {
      const out = savePath(r.save, r.cwd)
      // Rare and long: the export command itself (mksquashfs), as a subprocess.
      const e = childProcess().spawnSync(process.execPath, [process.argv[1] as string, 'export', '-f', '-o', out, name], { stdio: ['ignore', 'inherit', 'inherit'] })
      if (e.status === 0) say(`exported container ${name} to ${out}`)
      else { say(`failed to export container ${name} to ${out}`); failed = true }
    }
    if (r.name === undefined && isDir(path)) {
      say(`removing container filesystem: ${name}`)
      try { removeTree(path) } catch (err) { say(`failed to remove container filesystem: ${name}: ${(err as Error).message}`); failed = true }
    }
    return failed ? 1 : 0
  }
}

const epilog: Command = {
  usage,
  options: STEP_OPTIONS,
  noConfig: true,
  async run (args) {
    // The epilog runs without the job's environment (pyxis#123): at least give enroot the user's HOME.
    if (process.env.HOME === undefined) process.env.HOME = userInfo().homedir
    const cfg = (await import('../config/load.js')).loadConfig()
    const job = Number(args.opts.job)
    if (typeof args.opts.job !== 'string' || !Number.isInteger(job)) throw new EnrootError('USAGE', 'slurm protocol: missing --job-id')
    let names: string[] = []
    try { names = readdirSync(dataPath(cfg)) } catch {}
    let failed = false
    for (const n of names.filter(n => isJobContainer(n, job))) {
      try { removeTree(join(dataPath(cfg), n)) } catch { say(`epilog: failed to remove container ${n}`); failed = true }
    }
    return failed ? 1 : 0
  }
}

export const commands: Record<'slurm-import' | 'slurm-launch' | 'slurm-teardown' | 'slurm-epilog', Command> = {
  'slurm-import': importStep,
  'slurm-launch': launch,
  'slurm-teardown': teardown,
  'slurm-epilog': epilog
}
