// Which GPUs a container gets: NVIDIA_VISIBLE_DEVICES (what the image or user asks for) within Slurm's
// binding (what the job was given). Pure: host facts in, a selection out.
//
// Slurm's variables (gres/gpu): SLURM_STEP_GPUS (else SLURM_JOB_GPUS) lists the step's GPUs by global index;
// each task's CUDA_VISIBLE_DEVICES (GPU_DEVICE_ORDINAL) lists that task's GPUs, by global index, or, with
// ConstrainDevices=yes in cgroup.conf, by position within the step's GPUs. The environment does not say which:
// an index that is not a step GPU, or a list that only reads one way, decides; otherwise we read positions
// (ConstrainDevices=yes is what pyxis and enroot recommend, pyxis#47).
import { EnrootError } from '../../util/errors.js'
import type { HostDriver, HostGpu, MigDevice } from './nvidia-driver.js'

export type Request = { kind: 'void' } | { kind: 'none' } | { kind: 'all' } | { kind: 'list', ids: string[] }

export function parseVisible (value: string | undefined): Request {
  const v = (value ?? '').trim()
  if (v === '' || v === 'void') return { kind: 'void' }
  if (v === 'none') return { kind: 'none' }
  const ids = v.split(',').map(s => s.trim()).filter(s => s !== '')
  if (ids.includes('all')) return { kind: 'all' }
  return { kind: 'list', ids }
}

export interface Selection {
  gpus: HostGpu[]
  migs: MigDevice[]
  /** CUDA_VISIBLE_DEVICES for the container: set when the selection is narrower than what it can see */
  cudaVisible?: string
}

type Resolved = { gpu: HostGpu } | { mig: MigDevice, gpu: HostGpu }

export interface SelectOptions {
  /** the container is shared by the tasks of a step (pyxis): select the step's GPUs, not the first task's */
  shared?: boolean
  /** MIG-<uuid> → device; only NVML knows MIG UUIDs, so the caller asks nvidia-smi when one is used */
  lookupMigUuid?: (uuid: string) => MigDevice | undefined
}

const unknown = (id: string, drv: HostDriver): EnrootError => new EnrootError('HOOK', `Unknown NVIDIA device id: ${id}`, {
  hint: drv.gpus.length === 0
    ? 'No GPU is visible in /proc/driver/nvidia/gpus on this node.'
    : `This node has: ${drv.gpus.map(g => `${g.index} (${g.uuid ?? g.busId})`).join(', ')}; NVIDIA_VISIBLE_DEVICES takes indexes, GPU-/MIG- UUIDs, <gpu>:<mig>, PCI bus ids, all, none or void.`
})

const sameBus = (a: string, b: string): boolean => {
  const tail = (s: string): string => s.toLowerCase().split(':').slice(-2).join(':')
  return tail(a) === tail(b)
}

/** One id of NVIDIA_VISIBLE_DEVICES (or of Slurm's lists) → a GPU or a MIG device of this host. */
export function resolveId (id: string, drv: HostDriver, opts: SelectOptions = {}): Resolved {
  const byMinor = (minor: number): HostGpu | undefined => drv.gpus.find(g => g.minor === minor)
  let m: RegExpExecArray | null
  if (/^\d+$/.test(id)) {
    const gpu = drv.gpus[Number(id)]
    if (gpu !== undefined) return { gpu }
  } else if ((m = /^(\d+):(\d+)$/.exec(id)) !== null) {
    const gpu = drv.gpus[Number(m[1])]
    const mig = gpu === undefined ? undefined : drv.migs.filter(d => d.gpuMinor === gpu.minor)[Number(m[2])]
    if (gpu !== undefined && mig !== undefined) return { gpu, mig }
  } else if ((m = /^MIG-(GPU-[0-9a-f-]+)\/(\d+)\/(\d+)$/i.exec(id)) !== null) {
    const gpu = drv.gpus.find(g => g.uuid?.toLowerCase() === m?.[1]?.toLowerCase())
    const mig = gpu === undefined ? undefined : drv.migs.find(d => d.gpuMinor === gpu.minor && d.gi === Number(m?.[2]) && d.ci === Number(m?.[3]))
    if (gpu !== undefined && mig !== undefined) return { gpu, mig }
  } else if (/^MIG-/i.test(id)) {
    const mig = opts.lookupMigUuid?.(id)
    const gpu = mig === undefined ? undefined : byMinor(mig.gpuMinor)
    if (gpu !== undefined && mig !== undefined) return { gpu, mig }
  } else if (/^GPU-/i.test(id)) {
    const gpu = drv.gpus.find(g => g.uuid?.toLowerCase() === id.toLowerCase())
    if (gpu !== undefined) return { gpu }
  } else if (/^([0-9a-f]{4,8}:)?[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/i.test(id)) {
    const gpu = drv.gpus.find(g => sameBus(g.busId, id))
    if (gpu !== undefined) return { gpu }
  }
  throw unknown(id, drv)
}

/** "0-2,5" → [0, 1, 2, 5] (Slurm writes plain lists, ranges cost nothing to accept). */
export function parseIndexList (s: string): number[] | undefined {
  const out: number[] = []
  for (const part of s.split(',').map(p => p.trim()).filter(p => p !== '')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part)
    if (m === null) return undefined
    for (let i = Number(m[1]); i <= Number(m[2] ?? m[1]); i++) out.push(i)
  }
  return out
}

export interface SlurmBinding { step?: HostGpu[], task?: HostGpu[] }

/** The GPUs Slurm gave the step and this task, from the variables Slurm sets (only inside a job). */
export function slurmBinding (env: Readonly<Record<string, string>>, drv: HostDriver): SlurmBinding {
  if ((env.SLURM_JOB_ID ?? '') === '') return {}
  const out: SlurmBinding = {}
  const stepIds = parseIndexList(env.SLURM_STEP_GPUS ?? env.SLURM_JOB_GPUS ?? '')
  if (stepIds !== undefined && stepIds.length > 0) out.step = stepIds.map(i => resolveId(String(i), drv).gpu)
  const taskVar = env.CUDA_VISIBLE_DEVICES ?? env.GPU_DEVICE_ORDINAL
  if (taskVar === undefined) return out
  if (taskVar === 'NoDevFiles' || taskVar.trim() === '') { out.task = []; return out }
  const nums = parseIndexList(taskVar)
  if (nums === undefined) { out.task = taskVar.split(',').map(id => resolveId(id.trim(), drv).gpu); return out }
  const step = out.step
  // positions when every index fits the step's list; an index past its end can only be global
  const positional = step !== undefined && nums.every(n => n < step.length)
  out.task = nums.map(n => positional ? (step as HostGpu[])[n] as HostGpu : resolveId(String(n), drv).gpu)
  return out
}

const migId = (gpu: HostGpu, d: MigDevice): string => `MIG-${gpu.uuid ?? ''}/${d.gi}/${d.ci}`

/** The selection for a request within the Slurm binding; ids outside the binding are an error. */
export function selectDevices (req: Request, drv: HostDriver, env: Readonly<Record<string, string>>, opts: SelectOptions = {}): Selection {
  if (req.kind === 'void' || req.kind === 'none') return { gpus: [], migs: [] }
  const binding = slurmBinding(env, drv)
  const bound = opts.shared === true ? (binding.step ?? binding.task) : (binding.task ?? binding.step)
  let resolved: Resolved[]
  if (req.kind === 'all') {
    const gpus = bound ?? drv.gpus
    resolved = gpus.map(gpu => ({ gpu }))
    for (const gpu of gpus) for (const mig of drv.migs.filter(d => d.gpuMinor === gpu.minor)) resolved.push({ gpu, mig })
  } else {
    resolved = req.ids.map(id => resolveId(id, drv, opts))
    for (const [i, r] of resolved.entries()) {
      if (bound !== undefined && !bound.includes(r.gpu)) {
        throw new EnrootError('HOOK', `NVIDIA device ${req.ids[i] ?? ''} is not one of the GPUs Slurm gave this ${opts.shared === true ? 'step' : 'task'} (${bound.map(g => g.index).join(',') || 'none'})`,
          { hint: 'Set NVIDIA_VISIBLE_DEVICES=all to use the GPUs of the allocation, or request that GPU from Slurm.' })
      }
    }
  }
  const gpus = [...new Set(resolved.map(r => r.gpu))].sort((a, b) => a.index - b.index)
  const migs = resolved.flatMap(r => 'mig' in r ? [r.mig] : [])
  const sel: Selection = { gpus, migs }
  const narrower = req.kind === 'list' || (bound !== undefined && bound.length < drv.gpus.length)
  if (opts.shared !== true && narrower && gpus.every(g => g.uuid !== undefined)) {
    const ids = req.kind === 'list' && migs.length > 0
      ? resolved.map(r => 'mig' in r ? migId(r.gpu, r.mig) : r.gpu.uuid ?? '')
      : gpus.map(g => g.uuid ?? '')
    sel.cudaVisible = ids.join(',')
  }
  return sel
}
