// 98-nvidia: GPUs without nvidia-container-cli (spec §10; user-pain 5, 12, 32). The hook reads the driver
// from files, then makes it visible in the container by binds only:
//   device nodes         /dev/nvidia{ctl,-uvm,-uvm-tools,-modeset,N}, /dev/nvidia-caps/* for MIG;
//   libraries            a directory built in the runtime directory (placeholders + SONAME links), bound at
//                        /usr/local/nvidia/lib64 (lib for compat32), each placeholder covered by the host file;
//   linker cache         the image's /etc/ld.so.cache plus those libraries, written to the runtime directory
//                        and bound over /etc/ld.so.cache: the image is never written (enroot#128, #155);
//   binaries, firmware, sockets, the MPS pipe directory, a sanitised /proc/driver/nvidia.
// Device binds are needed only when the container does not see the host's /dev (ENROOT_RESTRICT_DEV or --ipc,
// where 10-devices gives it a private one): with the host /dev, isolation comes from Slurm's device cgroup,
// as in enroot, and CUDA_VISIBLE_DEVICES narrows what CUDA uses.
import { existsSync, lstatSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { EnrootError } from '../../util/errors.js'
import { log } from '../../util/log.js'
import type { HookContext, HookOutput } from './types.js'
import { emptyOutput, flag } from './types.js'
import { fstabOps, escapeField, readText } from './util.js'
import { parseCapabilities, libraryNames, binaryNames, controlDevices, extraPaths, type Capability } from './nvidia-caps.js'
import { at, discoverDriver, findBinary, findLibraries, firmwareFiles, type DriverLib, type HostDriver, type MigDevice } from './nvidia-driver.js'
import { parseVisible, selectDevices, type Selection } from './nvidia-select.js'
import { checkRequirements, compareVersions, cudaForDriver, brandOf, requirementVars, parseRequirement, usesKey, type DriverFacts } from './nvidia-require.js'
import { parseLdCache, writeLdCache, mergeEntries, readConfined, resolveInRoot, nativeFlags, CACHE_FLAGS, type CacheEntry } from './ldcache.js'
import { runSmi, parseSmiArch, parseSmiCuda, parseSmiMigUuids } from './nvidia-smi.js'

export const LIB_DIR = '/usr/local/nvidia/lib64'
export const LIB32_DIR = '/usr/local/nvidia/lib'
const ORIGIN = 'hooks.d/98-nvidia.sh'

/**
 * NVIDIA_* as the hook sees them: the container environment (last line wins), overridden by the hook's own
 * environment (host or enroot.conf), as enroot's hooks do.
 */
export function nvidiaVars (env: Readonly<Record<string, string>>, environ: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (const line of environ) {
    const i = line.indexOf('=')
    if (i > 0 && line.startsWith('NVIDIA_')) out[line.slice(0, i)] = line.slice(i + 1)
  }
  for (const [k, v] of Object.entries(env)) if (k.startsWith('NVIDIA_')) out[k] = v
  return out
}

/** Files and links to create in the runtime directory (host side), then the mounts and environment lines. */
export interface NvidiaPlan {
  files: Array<{ path: string, content: string | Buffer, mode: number }>
  dirs: string[]
  links: Array<{ path: string, target: string }>
  fstab: string[]
  environ: string[]
}

/** The facts NVIDIA_REQUIRE_* are checked against, asking nvidia-smi only for what the table cannot say. */
export function driverFacts (drv: HostDriver, sel: Selection, nv: Readonly<Record<string, string>>): DriverFacts {
  const reqs = requirementVars(nv).map(([, v]) => parseRequirement(v))
  let cuda = cudaForDriver(drv.version)
  const needsNewer = cuda === undefined || (cuda.latest && reqs.some(r => r.some(t => t.some(c => c.key === 'cuda' && compareVersions(c.value, cuda?.cuda ?? '0') > 0))))
  if (needsNewer && reqs.some(r => usesKey(r, 'cuda'))) {
    const smi = parseSmiCuda(runSmi(drv.root, []) ?? '')
    if (smi !== undefined) cuda = { cuda: smi, latest: false }
  }
  const arch = reqs.some(r => usesKey(r, 'arch')) ? parseSmiArch(runSmi(drv.root, ['--query-gpu=pci.bus_id,compute_cap', '--format=csv,noheader']) ?? '') : undefined
  return {
    driver: drv.version,
    cuda: cuda?.cuda ?? '0',
    gpus: sel.gpus.map(g => {
      const a = arch?.get(g.busId.toLowerCase().split(':').slice(-2).join(':'))
      return { brand: brandOf(g.model), ...(a === undefined ? {} : { arch: a }) }
    })
  }
}

const libEntries = (libs: readonly DriverLib[], dir: string, flags: number): CacheEntry[] =>
  libs.flatMap(l => [...l.sonames, `${l.name}.so`].map(key => ({ key, value: `${dir}/${key}`, flags, hwcap: 0n })))

/**
 * CUDA forward compatibility: an image's /usr/local/cuda/compat libraries newer than the driver replace the
 * driver's (as libnvidia-container does), unless they are empty stubs (enroot#155).
 */
export function compatEntries (rootfs: string, driverVersion: string, libs: readonly DriverLib[]): CacheEntry[] {
  const dir = 'usr/local/cuda/compat'
  const hostDir = resolveInRoot(rootfs, dir)
  let names: string[]
  try { names = hostDir === undefined ? [] : readdirSync(hostDir) } catch { return [] }
  const out: CacheEntry[] = []
  for (const l of libs) {
    const real = names.find(n => n.startsWith(`${l.name}.so.`) && /^\d+(\.\d+)+$/.test(n.slice(l.name.length + 4)))
    if (real === undefined || compareVersions(real.slice(l.name.length + 4), driverVersion) <= 0) continue
    const st = lstatSync(join(hostDir as string, real), { throwIfNoEntry: false })
    if (st === undefined || !st.isFile()) continue
    if (st.size === 0) { log.warn(`Ignoring empty CUDA compat library /${dir}/${real}`); continue }
    for (const key of l.sonames.filter(s => names.includes(s))) out.push({ key, value: `/${dir}/${key}`, flags: nativeFlags(), hwcap: 0n })
  }
  return out
}

function bind (src: string, dst: string, opts: string): string {
  return `${escapeField(src)} ${escapeField(dst)} none ${opts}`
}

function migUuidLookup (drv: HostDriver): (uuid: string) => MigDevice | undefined {
  let map: Map<string, MigDevice> | undefined
  return (uuid) => {
    map ??= parseSmiMigUuids(runSmi(drv.root, ['-L']) ?? '', drv)
    return map.get(uuid.toLowerCase())
  }
}

/** Everything the hook does, as data; undefined when the container does not ask for GPUs. */
export function nvidiaPlan (ctx: HookContext): NvidiaPlan | undefined {
  const nv = nvidiaVars(ctx.env, ctx.environ)
  const req = parseVisible(nv.NVIDIA_VISIBLE_DEVICES)
  if (req.kind === 'void') return undefined
  const root = ctx.env.ENROOT_DRIVER_ROOT === undefined || ctx.env.ENROOT_DRIVER_ROOT === '' ? '/' : ctx.env.ENROOT_DRIVER_ROOT
  const caps = parseCapabilities(nv.NVIDIA_DRIVER_CAPABILITIES)
  const drv = discoverDriver(root)
  if (drv === undefined) {
    // CUDA images carry NVIDIA_VISIBLE_DEVICES=all: on a node without GPUs they still start, without GPUs.
    if (req.kind !== 'list') { log.debug(`nvidia: no driver in ${at(root, '/proc/driver/nvidia/version')}, skipping`); return undefined }
    throw new EnrootError('HOOK', `NVIDIA_VISIBLE_DEVICES=${nv.NVIDIA_VISIBLE_DEVICES ?? ''} but no NVIDIA driver is loaded: ${at(root, '/proc/driver/nvidia/version')} is missing`,
      { hint: 'Run on a GPU node, or unset NVIDIA_VISIBLE_DEVICES (or set it to void) to start without GPUs.' })
  }
  const shared = (ctx.env.PYXIS_VERSION ?? '') !== ''
  const sel = selectDevices(req, drv, ctx.env, { shared, lookupMigUuid: migUuidLookup(drv) })
  checkRequirements(nv, driverFacts(drv, sel, nv))
  if (caps.has('compute') && !drv.uvmLoaded) log.warn('Kernel module nvidia_uvm is not loaded. Make sure the NVIDIA device driver is installed and loaded.')

  const rt = join(ctx.runtimeDir, 'nvidia')
  const plan: NvidiaPlan = { files: [], dirs: [], links: [], fstab: [], environ: [] }
  // Binding over the host's own /dev would create placeholders on the host: nodes are bound only into the
  // private /dev of 10-devices (ENROOT_RESTRICT_DEV, or --ipc).
  const devBind = flag(ctx.env, 'ENROOT_RESTRICT_DEV') || flag(ctx.env, 'ENROOT_UNSHARE_IPC')
  if (devBind) plan.fstab.push(...deviceLines(drv, caps, sel, nv))
  if (root === '/' && existsSync('/proc/driver/nvidia/gpus')) procView(plan, rt, sel)
  libraries(plan, ctx.rootfs, rt, drv, caps)
  hostFiles(plan, drv, caps, devBind, ctx.env.CUDA_MPS_PIPE_DIRECTORY ?? '/tmp/nvidia-mps')
  if (ctx.env.CUDA_MPS_PIPE_DIRECTORY !== undefined && caps.has('compute')) plan.environ.push(`CUDA_MPS_PIPE_DIRECTORY=${ctx.env.CUDA_MPS_PIPE_DIRECTORY}`)
  if (sel.cudaVisible !== undefined) plan.environ.push(`CUDA_VISIBLE_DEVICES=${sel.cudaVisible}`)
  return plan
}

/** The driver's libraries (native and compat32) in their directories, and the linker cache that finds them. */
function libraries (plan: NvidiaPlan, rootfs: string, rt: string, drv: HostDriver, caps: ReadonlySet<Capability>): void {
  const libs = findLibraries(drv.root, libraryNames(caps), drv.version, false)
  for (const [cap, lib] of [['utility', 'libnvidia-ml'], ['compute', 'libcuda']] as const) {
    if (caps.has(cap) && !libs.some(l => l.name === lib)) {
      log.warn(`NVIDIA driver library ${lib}.so.${drv.version} not found (${at(drv.root, '/etc/ld.so.cache')}, /usr/lib*): the container gets no ${lib} ` +
        `for NVIDIA_DRIVER_CAPABILITIES=${cap}; install the user-space driver that matches kernel module ${drv.version}`)
    }
  }
  const libs32 = caps.has('compat32') ? findLibraries(drv.root, libraryNames(caps), drv.version, true) : []
  libraryLayout(plan, join(rt, 'lib64'), LIB_DIR, libs)
  if (libs32.length > 0) libraryLayout(plan, join(rt, 'lib'), LIB32_DIR, libs32)
  const image = parseLdCache(readConfined(rootfs, 'etc/ld.so.cache') ?? Buffer.alloc(0))
  const injected = [...libEntries(libs, LIB_DIR, nativeFlags()), ...libEntries(libs32, LIB32_DIR, CACHE_FLAGS.libc6)]
  const cache = mergeEntries(mergeEntries(image, injected), compatEntries(rootfs, drv.version, libs))
  plan.files.push({ path: join(rt, 'ld.so.cache'), content: writeLdCache(cache), mode: 0o644 })
  plan.fstab.push(bind(join(rt, 'ld.so.cache'), '/etc/ld.so.cache', 'x-create=file,bind,ro,nosuid,nodev,noexec'))
}

/** Binaries, firmware, and the optional paths (sockets, MPS, GDRCopy, ICD files) that exist on the host. */
function hostFiles (plan: NvidiaPlan, drv: HostDriver, caps: ReadonlySet<Capability>, devBind: boolean, mps: string): void {
  const root = drv.root
  for (const name of binaryNames(caps)) {
    const p = findBinary(root, name)
    if (p !== undefined) plan.fstab.push(bind(p, `/usr/bin/${name}`, 'x-create=file,bind,ro,nosuid,nodev'))
  }
  for (const f of firmwareFiles(root, drv.version)) plan.fstab.push(bind(at(root, f), f, 'x-create=file,bind,ro,nosuid,nodev,noexec,nofail,silent'))
  for (const p of extraPaths(caps, mps)) {
    const dev = p.startsWith('/dev/')
    if ((dev && !devBind) || !existsSync(at(root, p))) continue
    // sockets and the MPS pipes are written to; device nodes need dev
    const rw = dev || p === mps || p.endsWith('/socket')
    plan.fstab.push(bind(at(root, p), p, `x-create=auto,bind,${rw ? 'rw' : 'ro'},nosuid${dev ? '' : ',nodev'},noexec,nofail,silent`))
  }
}

/** Device node binds (rw: CUDA opens them for writing; the mount is nosuid,noexec). */
export function deviceLines (drv: HostDriver, caps: ReadonlySet<Capability>, sel: Selection, nv: Readonly<Record<string, string>>): string[] {
  const out: string[] = []
  const dev = (name: string, optional: boolean): void => {
    const src = at(drv.root, `/dev/${name}`)
    if (!existsSync(src)) {
      if (optional) return
      throw new EnrootError('HOOK', `NVIDIA device node missing: ${src}`, { hint: 'Load the NVIDIA driver (nvidia-modprobe, or nvidia-persistenced creates the nodes).' })
    }
    out.push(bind(src, `/dev/${name}`, 'x-create=file,bind,rw,nosuid,noexec'))
  }
  for (const c of controlDevices(caps)) dev(c, c !== 'nvidiactl')
  for (const g of sel.gpus) dev(`nvidia${g.minor}`, false)
  for (const m of sel.migs) { dev(`nvidia-caps/nvidia-cap${m.giCap}`, false); dev(`nvidia-caps/nvidia-cap${m.ciCap}`, false) }
  if ((nv.NVIDIA_MIG_CONFIG_DEVICES ?? '') !== '' || (nv.NVIDIA_MIG_MONITOR_DEVICES ?? '') !== '') {
    if (existsSync(at(drv.root, '/dev/nvidia-caps'))) out.push(bind(at(drv.root, '/dev/nvidia-caps'), '/dev/nvidia-caps', 'x-create=dir,bind,rw,nosuid,noexec'))
  }
  return out
}

/**
 * The container's /proc/driver/nvidia: a copy with ModifyDeviceFiles: 0 (so CUDA never tries to create
 * device nodes, which fails in a user namespace), and only the selected GPUs under gpus/ — what makes NVML
 * and nvidia-smi list just those.
 */
export function procView (plan: NvidiaPlan, rt: string, sel: Selection, host = '/proc/driver/nvidia'): void {
  const dir = join(rt, 'proc')
  const target = '/proc/driver/nvidia'
  plan.dirs.push(dir, join(dir, 'gpus'))
  for (const f of ['version', 'registry', 'params']) {
    const text = readText(`${host}/${f}`)
    if (text !== undefined) plan.files.push({ path: join(dir, f), content: f === 'params' ? text.replace(/^ModifyDeviceFiles: \d+$/m, 'ModifyDeviceFiles: 0') : text, mode: 0o444 })
  }
  plan.fstab.push(bind(dir, target, 'bind,ro,nosuid,nodev,noexec,nofail'))
  for (const g of sel.gpus) {
    plan.dirs.push(join(dir, 'gpus', g.busId))
    plan.fstab.push(bind(`${host}/gpus/${g.busId}`, `${target}/gpus/${g.busId}`, 'bind,ro,nosuid,nodev,noexec,nofail'))
  }
  if (existsSync(`${host}/capabilities`)) {
    plan.dirs.push(join(dir, 'capabilities'))
    plan.fstab.push(bind(`${host}/capabilities`, `${target}/capabilities`, 'bind,ro,nosuid,nodev,noexec,nofail'))
  }
}

/** The library directory: empty placeholders covered by binds of the host files, and the links to them. */
function libraryLayout (plan: NvidiaPlan, hostDir: string, dir: string, libs: readonly DriverLib[]): void {
  plan.dirs.push(hostDir)
  plan.fstab.push(bind(hostDir, dir, 'x-create=dir,bind,ro,nosuid,nodev'))
  for (const l of libs) {
    plan.files.push({ path: join(hostDir, l.file), content: '', mode: 0o644 })
    for (const s of l.sonames) plan.links.push({ path: join(hostDir, s), target: l.file })
    plan.links.push({ path: join(hostDir, `${l.name}.so`), target: l.sonames[0] ?? l.file })
    plan.fstab.push(bind(l.hostPath, `${dir}/${l.file}`, 'bind,ro,nosuid,nodev'))
  }
}

/** Create the runtime-directory part of a plan (the linker cache is binary, so not a HookOutput file). */
export function materialize (plan: NvidiaPlan): void {
  for (const d of plan.dirs) mkdirSync(d, { recursive: true, mode: 0o755 })
  for (const f of plan.files) writeFileSync(f.path, f.content, { mode: f.mode })
  for (const l of plan.links) {
    try { symlinkSync(l.target, l.path) } catch (err) { if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err }
  }
}

export function nvidia (ctx: HookContext): HookOutput {
  const out = emptyOutput()
  const plan = nvidiaPlan(ctx)
  if (plan === undefined) return out
  materialize(plan)
  out.environ = plan.environ
  out.fstab = fstabOps(plan.fstab, ORIGIN)
  return out
}

/**
 * For a container shared by the tasks of a step (pyxis): the CUDA_VISIBLE_DEVICES a task should get when it
 * joins, from that task's own Slurm variables (the container holds the step's GPUs; the hook ran once, in
 * the first task's context, pyxis#73). Undefined when nothing narrows the selection.
 */
export function taskCudaVisible (taskEnv: Readonly<Record<string, string>>, environ: readonly string[]): string | undefined {
  const nv = nvidiaVars(taskEnv, environ)
  const req = parseVisible(nv.NVIDIA_VISIBLE_DEVICES)
  if (req.kind === 'void' || req.kind === 'none') return undefined
  const root = taskEnv.ENROOT_DRIVER_ROOT === undefined || taskEnv.ENROOT_DRIVER_ROOT === '' ? '/' : taskEnv.ENROOT_DRIVER_ROOT
  const drv = discoverDriver(root)
  return drv === undefined ? undefined : selectDevices(req, drv, taskEnv, { lookupMigUuid: migUuidLookup(drv) }).cudaVisible
}
