// What the host's NVIDIA driver offers, read from files only (no NVML, no nvidia-smi on the common path):
// /proc/driver/nvidia for the version and the GPUs, /dev for the nodes, the host's ld.so.cache for the
// user-space libraries. Everything is below `root` (ENROOT_DRIVER_ROOT, `/` on a real node), which is how
// the test suite points the hook at a fake driver tree.
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, realpathSync, statSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { readText } from './util.js'
import { parseLdCache, nativeFlags, CACHE_FLAGS, type CacheEntry } from './ldcache.js'

export interface HostGpu {
  /** NVML/nvidia-smi index: the position in PCI bus order */
  index: number
  busId: string
  /** N of /dev/nvidiaN */
  minor: number
  uuid?: string
  model: string
}

/** A MIG device: compute instance `ci` of GPU instance `gi` on a GPU, with its two capability nodes. */
export interface MigDevice { gpuMinor: number, gi: number, ci: number, giCap: number, ciCap: number }

export interface HostDriver {
  root: string
  version: string
  gpus: HostGpu[]
  /** sorted by GPU, then gi, then ci: the order `<gpu>:<n>` addresses */
  migs: MigDevice[]
  uvmLoaded: boolean
}

/** A path below the driver root. */
export const at = (root: string, path: string): string => root === '/' || root === '' ? path : join(root, path)

/** "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  …" (or "… Open Kernel Module for x86_64 …") */
export function parseDriverVersion (text: string): string | undefined {
  return /Kernel Module(?: for \S+)?\s+(\d+\.\d+(?:\.\d+)?)/.exec(text)?.[1]
}

/** /proc/driver/nvidia/gpus/<bus>/information: "Model: \t NVIDIA H100", "GPU UUID: \t GPU-…", "Device Minor: \t 0" */
export function parseGpuInformation (text: string): { model: string, uuid?: string, minor?: number } {
  const field = (name: string): string | undefined => new RegExp(`^${name}:\\s*(.*?)\\s*$`, 'm').exec(text)?.[1]
  const uuid = field('GPU UUID')
  const minor = field('Device Minor')
  return {
    model: field('Model') ?? 'unknown',
    ...(uuid !== undefined && uuid.startsWith('GPU-') ? { uuid } : {}),
    ...(minor !== undefined && /^\d+$/.test(minor) ? { minor: Number(minor) } : {})
  }
}

const capMinor = (path: string): number | undefined => {
  const m = /DeviceFileMinor:\s*(\d+)/.exec(readText(path) ?? '')
  return m === null ? undefined : Number(m[1])
}

function listDir (path: string): string[] {
  try { return readdirSync(path).sort() } catch { return [] }
}

function discoverMigs (root: string, gpus: readonly HostGpu[]): MigDevice[] {
  const out: MigDevice[] = []
  for (const g of gpus) {
    const base = at(root, `/proc/driver/nvidia/capabilities/gpu${g.minor}/mig`)
    const num = (s: string, p: string): number => Number(s.slice(p.length))
    for (const gi of listDir(base).filter(n => /^gi\d+$/.test(n)).sort((a, b) => num(a, 'gi') - num(b, 'gi'))) {
      const giCap = capMinor(join(base, gi, 'access'))
      if (giCap === undefined) continue
      for (const ci of listDir(join(base, gi)).filter(n => /^ci\d+$/.test(n)).sort((a, b) => num(a, 'ci') - num(b, 'ci'))) {
        const ciCap = capMinor(join(base, gi, ci, 'access'))
        if (ciCap !== undefined) out.push({ gpuMinor: g.minor, gi: num(gi, 'gi'), ci: num(ci, 'ci'), giCap, ciCap })
      }
    }
  }
  return out
}

/** The driver below root, or undefined when no NVIDIA driver is loaded there. */
export function discoverDriver (root: string): HostDriver | undefined {
  const version = parseDriverVersion(readText(at(root, '/proc/driver/nvidia/version')) ?? '')
  if (version === undefined) return undefined
  const gpusDir = at(root, '/proc/driver/nvidia/gpus')
  const gpus: HostGpu[] = []
  for (const busId of listDir(gpusDir)) {
    const info = parseGpuInformation(readText(join(gpusDir, busId, 'information')) ?? '')
    if (info.minor === undefined) continue
    gpus.push({ index: gpus.length, busId, minor: info.minor, model: info.model, ...(info.uuid === undefined ? {} : { uuid: info.uuid }) })
  }
  const modules = readText(at(root, '/proc/modules')) ?? ''
  return { root, version, gpus, migs: discoverMigs(root, gpus), uvmLoaded: /^nvidia_uvm /m.test(modules) }
}

/** One driver library to inject: the host file and the names the container needs for it. */
export interface DriverLib {
  name: string
  /** host path (below root) of the real file, e.g. …/libcuda.so.550.54.15 */
  hostPath: string
  /** basename of the real file */
  file: string
  /** SONAME links (libcuda.so.1); the development link libcuda.so is added by the caller */
  sonames: string[]
  /** 32-bit (compat32) */
  lib32: boolean
}

const HOST_LIB_DIRS = ['/usr/lib/x86_64-linux-gnu', '/usr/lib64', '/lib64', '/usr/lib', '/lib', '/usr/lib/aarch64-linux-gnu']
const HOST_LIB32_DIRS = ['/usr/lib/i386-linux-gnu', '/usr/lib32', '/usr/lib']

/** Resolve `path` (absolute, as the host sees it below root) to its real file, staying below root. */
function realBelow (root: string, path: string): string | undefined {
  try {
    const real = realpathSync(at(root, path))
    if (root === '/' || root === '') return real
    const r = realpathSync(root)
    return real.startsWith(`${r}/`) ? real : undefined
  } catch { return undefined }
}

let parsed: { key: string, entries: CacheEntry[] } | undefined

/** The host's linker cache, parsed once while unchanged (a start asks twice with compat32; the node launcher lives long). */
function hostCache (root: string): CacheEntry[] {
  const path = at(root, '/etc/ld.so.cache')
  const st = statSync(path, { throwIfNoEntry: false })
  const key = `${path}\0${st?.mtimeMs ?? 0}\0${st?.size ?? 0}`
  if (parsed?.key === key) return parsed.entries
  let buf: Buffer | undefined
  try { buf = readFileSync(path) } catch {}
  parsed = { key, entries: buf === undefined ? [] : parseLdCache(buf) }
  return parsed.entries
}

/**
 * Find the driver's libraries as libnvidia-container does: through the host's ld.so.cache, keeping only files
 * whose name carries the running driver's version (an old driver's leftovers must not be injected). Without a
 * cache, the usual directories are searched.
 */
export function findLibraries (root: string, names: readonly string[], version: string, lib32: boolean): DriverLib[] {
  const flags = lib32 ? CACHE_FLAGS.libc6 : nativeFlags()
  const entries = hostCache(root).filter(e => e.flags === flags)
  const out: DriverLib[] = []
  for (const name of names) {
    const lib = entries.length > 0 ? fromCache(root, entries, name, version, lib32) : fromDirs(root, name, version, lib32)
    if (lib !== undefined) out.push(lib)
  }
  return out
}

function fromCache (root: string, entries: readonly CacheEntry[], name: string, version: string, lib32: boolean): DriverLib | undefined {
  const re = new RegExp(`^${name.replace(/[.+]/g, '\\$&')}\\.so(\\.\\d+)*$`)
  let hostPath: string | undefined
  const sonames: string[] = []
  for (const e of entries) {
    if (!re.test(e.key)) continue
    const real = realBelow(root, e.value)
    if (real === undefined || !basename(real).endsWith(`.so.${version}`)) continue
    hostPath ??= real
    if (real === hostPath && e.key !== `${name}.so` && e.key !== basename(real) && !sonames.includes(e.key)) sonames.push(e.key)
  }
  return hostPath === undefined ? undefined : { name, hostPath, file: basename(hostPath), sonames, lib32 }
}

function fromDirs (root: string, name: string, version: string, lib32: boolean): DriverLib | undefined {
  const file = `${name}.so.${version}`
  for (const dir of lib32 ? HOST_LIB32_DIRS : HOST_LIB_DIRS) {
    const hostPath = at(root, join(dir, file))
    if (!existsSync(hostPath)) continue
    const sonames = listDir(dirname(hostPath)).filter(n => n.startsWith(`${name}.so.`) && n !== file && isLinkTo(join(dirname(hostPath), n), file))
    return { name, hostPath, file, sonames, lib32 }
  }
  return undefined
}

const isLinkTo = (path: string, file: string): boolean => {
  try { return lstatSync(path).isSymbolicLink() && basename(readlinkSync(path)) === file } catch { return false }
}

/** The first of dirs (below root) holding an executable called name. */
export function findBinary (root: string, name: string): string | undefined {
  for (const d of ['/usr/bin', '/usr/sbin', '/bin', '/sbin', '/usr/local/bin']) {
    const p = at(root, `${d}/${name}`)
    try { if (lstatSync(p).isFile() || lstatSync(p).isSymbolicLink()) return realpathSync(p) } catch {}
  }
  return undefined
}

/** GSP firmware files of this driver version (bound nofail: a kernel refusing the bind must not stop a start, enroot#111). */
export function firmwareFiles (root: string, version: string): string[] {
  for (const d of ['/lib/firmware/nvidia', '/usr/lib/firmware/nvidia']) {
    const dir = at(root, `${d}/${version}`)
    const files = listDir(dir).filter(n => n.startsWith('gsp') && n.endsWith('.bin'))
    if (files.length > 0) return files.map(f => `${d}/${version}/${f}`)
  }
  return []
}
