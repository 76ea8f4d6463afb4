// The few facts only NVML knows, asked of the host's nvidia-smi. Never on the common path: only when an
// image requires a compute capability (arch=), addresses a MIG device by MIG-<uuid>, needs a CUDA version
// newer than our table, or the 50-mig-config hook runs. nvidia-smi costs 0.1–1 s, so each is asked once.
import { execFileSync } from 'node:child_process'
import { log } from '../../util/log.js'
import { findBinary, type HostDriver, type MigDevice } from './nvidia-driver.js'

export function runSmi (root: string, args: string[]): string | undefined {
  const smi = findBinary(root, 'nvidia-smi')
  if (smi === undefined) return undefined
  log.debug(`nvidia: ${smi} ${args.join(' ')}`)
  try { return execFileSync(smi, args, { encoding: 'utf8', timeout: 20_000, stdio: ['ignore', 'pipe', 'ignore'] }) } catch { return undefined }
}

/** "CUDA Version: 12.4" from nvidia-smi's banner. */
export const parseSmiCuda = (out: string): string | undefined => /CUDA Version:\s*(\d+\.\d+)/.exec(out)?.[1]

/** `nvidia-smi --query-gpu=pci.bus_id,compute_cap --format=csv,noheader` → bus id → "9.0" */
export function parseSmiArch (out: string): Map<string, string> {
  const m = new Map<string, string>()
  for (const line of out.split('\n')) {
    const [bus, cap] = line.split(',').map(s => s.trim())
    if (bus !== undefined && cap !== undefined && /^\d+\.\d+$/.test(cap)) m.set(bus.toLowerCase().split(':').slice(-2).join(':'), cap)
  }
  return m
}

/** `nvidia-smi -L`: MIG lines follow their GPU line; the n-th MIG line of GPU i is `i:n`. */
export function parseSmiMigUuids (out: string, drv: HostDriver): Map<string, MigDevice> {
  const map = new Map<string, MigDevice>()
  let gpu = -1
  let n = 0
  for (const line of out.split('\n')) {
    const g = /^GPU (\d+):/.exec(line)
    if (g !== null) { gpu = Number(g[1]); n = 0; continue }
    const mig = /\(UUID: (MIG-[^)\s]+)\)/.exec(line)
    if (mig === null || gpu < 0) continue
    const host = drv.gpus[gpu]
    const dev = host === undefined ? undefined : drv.migs.filter(d => d.gpuMinor === host.minor)[n]
    if (dev !== undefined) map.set((mig[1] as string).toLowerCase(), dev)
    n++
  }
  return map
}

/** `nvidia-smi --query-gpu=mig.mode.current --format=csv,noheader` says Enabled for some GPU. */
export const parseSmiMigEnabled = (out: string): boolean => out.split('\n').some(l => l.trim() === 'Enabled')
