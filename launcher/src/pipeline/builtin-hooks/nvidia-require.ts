// NVIDIA_REQUIRE_* (libnvidia-container's dsl.c): each variable is one predicate; within it, space-separated
// terms must all hold (AND) and each term is a comma-separated list of which one must hold (OR):
//   cuda>=12.0 brand=tesla,driver>=535   means   cuda>=12.0 AND (brand=tesla OR driver>=535)
// cuda and driver are compared as versions, arch (compute capability) too, brand as a case-insensitive
// string. arch and brand are checked against every selected GPU; with no GPU selected they hold.
import { EnrootError } from '../../util/errors.js'

export type ReqKey = 'cuda' | 'driver' | 'arch' | 'brand'
export type ReqOp = '=' | '!=' | '<' | '<=' | '>' | '>='
export interface Constraint { key: ReqKey, op: ReqOp, value: string }
/** AND of ORs */
export type Requirement = Constraint[][]

const KEYS: readonly string[] = ['cuda', 'driver', 'arch', 'brand']
const TERM = /^([a-z]+)(>=|<=|!=|=|<|>)([^=<>!].*)$/

export function parseRequirement (expr: string): Requirement {
  return expr.split(/\s+/).filter(s => s !== '').map(term => term.split(',').filter(s => s !== '').map(c => {
    const m = TERM.exec(c.trim())
    if (m === null || !KEYS.includes(m[1] as string)) {
      throw new EnrootError('HOOK', `Invalid NVIDIA requirement: ${c}`,
        { hint: 'A requirement is KEY OP VALUE with KEY one of cuda, driver, arch, brand and OP one of = != < <= > >=' })
    }
    return { key: m[1] as ReqKey, op: m[2] as ReqOp, value: m[3] as string }
  }))
}

/** Numeric, component by component; missing components count as 0 (12 = 12.0). */
export function compareVersions (a: string, b: string): number {
  const pa = a.split('.').map(n => parseInt(n, 10) || 0)
  const pb = b.split('.').map(n => parseInt(n, 10) || 0)
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0)
    if (d !== 0) return d
  }
  return 0
}

function holds (cmp: number, op: ReqOp): boolean {
  switch (op) {
    case '=': return cmp === 0
    case '!=': return cmp !== 0
    case '<': return cmp < 0
    case '<=': return cmp <= 0
    case '>': return cmp > 0
    case '>=': return cmp >= 0
    default: { const never: never = op; return never }
  }
}

/** What a requirement is checked against. Lazily filled facts (arch) may be undefined when not needed. */
export interface DriverFacts {
  driver: string
  cuda: string
  gpus: Array<{ arch?: string, brand: string }>
}

function check (c: Constraint, facts: DriverFacts, gpu: { arch?: string, brand: string } | undefined): boolean {
  switch (c.key) {
    case 'cuda': return holds(compareVersions(facts.cuda, c.value), c.op)
    case 'driver': return holds(compareVersions(facts.driver, c.value), c.op)
    case 'arch': return gpu === undefined || (gpu.arch !== undefined && holds(compareVersions(gpu.arch, c.value), c.op))
    case 'brand': return gpu === undefined || holds(gpu.brand.toLowerCase() === c.value.toLowerCase() ? 0 : 1, c.op)
    default: { const never: never = c.key; return never }
  }
}

/** The first term that fails, or undefined when the requirement holds (for every selected GPU). */
export function unmetTerm (req: Requirement, facts: DriverFacts): Constraint[] | undefined {
  const targets = facts.gpus.length > 0 ? facts.gpus : [undefined]
  for (const gpu of targets) {
    for (const term of req) if (!term.some(c => check(c, facts, gpu))) return term
  }
  return undefined
}

export const usesKey = (req: Requirement, key: ReqKey): boolean => req.some(t => t.some(c => c.key === key))

const show = (term: Constraint[]): string => term.map(c => `${c.key}${c.op}${c.value}`).join(',')

/** Check every NVIDIA_REQUIRE_* of env unless NVIDIA_DISABLE_REQUIRE; throws naming the unmet term. */
export function checkRequirements (env: Readonly<Record<string, string>>, facts: DriverFacts): void {
  if ((env.NVIDIA_DISABLE_REQUIRE ?? '') !== '') return
  for (const [name, value] of requirementVars(env)) {
    const term = unmetTerm(parseRequirement(value), facts)
    if (term === undefined) continue
    const gpus = facts.gpus.map(g => `${g.brand}${g.arch === undefined ? '' : ` sm ${g.arch}`}`).join(', ')
    throw new EnrootError('HOOK', `Unmet NVIDIA requirement ${name}: ${show(term)} (driver ${facts.driver}, CUDA ${facts.cuda}${gpus === '' ? '' : `, GPUs: ${gpus}`})`,
      { hint: `Use an image built for this driver, or set NVIDIA_DISABLE_REQUIRE=1 to start anyway (e.g. enroot start -e NVIDIA_DISABLE_REQUIRE=1).` })
  }
}

export function requirementVars (env: Readonly<Record<string, string>>): Array<[string, string]> {
  return Object.entries(env).filter(([k, v]) => k.startsWith('NVIDIA_REQUIRE_') && v.trim() !== '').sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)
}

// The highest CUDA version each driver branch supports (nvidia-smi's "CUDA Version"), from NVIDIA's CUDA
// release notes (table 3). Reading it from the driver means loading libcuda (cuDriverGetVersion), which this
// process cannot do; a driver newer than the table is at least the last entry, and when a requirement needs
// more, the caller asks the driver's nvidia-smi.
const CUDA_BY_BRANCH: ReadonlyArray<[number, string]> = [
  [410, '10.0'], [418, '10.1'], [440, '10.2'], [450, '11.0'], [455, '11.1'], [460, '11.2'], [465, '11.3'],
  [470, '11.4'], [495, '11.5'], [510, '11.6'], [515, '11.7'], [520, '11.8'], [525, '12.0'], [530, '12.1'],
  [535, '12.2'], [545, '12.3'], [550, '12.4'], [555, '12.5'], [560, '12.6'], [565, '12.7'], [570, '12.8'],
  [575, '12.9'], [580, '13.0']
]

/** CUDA version for a driver version by its branch; `latest` says the driver is newer than the table. */
export function cudaForDriver (driver: string): { cuda: string, latest: boolean } | undefined {
  const major = parseInt(driver, 10)
  let best: [number, string] | undefined
  for (const e of CUDA_BY_BRANCH) if (e[0] <= major) best = e
  if (best === undefined) return undefined
  return { cuda: best[1], latest: best === CUDA_BY_BRANCH.at(-1) && major > best[0] }
}

/** NVML-like brand from the model name (/proc/driver/nvidia/gpus/X/information has no brand line). */
export function brandOf (model: string): string {
  const m = model.toLowerCase()
  if (m.includes('tesla')) return 'tesla'
  if (m.includes('quadro rtx')) return 'quadrortx'
  if (m.includes('quadro')) return 'quadro'
  if (m.includes('geforce rtx')) return 'geforcertx'
  if (m.includes('geforce')) return 'geforce'
  if (m.includes('titan rtx')) return 'titanrtx'
  if (m.includes('titan')) return 'titan'
  if (m.includes('nvs')) return 'nvs'
  if (m.includes('grid')) return 'grid'
  if (/\brtx a?\d/.test(m)) return 'nvidiartx'
  if (m.includes('nvidia')) return 'nvidia'
  return 'unknown'
}
