// 50-slurm-pytorch (extra, opt-in as in enroot): torch.distributed's variables from Slurm's, for images
// that carry PYTORCH_VERSION. Each is written only when the container environment lacks it. RANK and
// LOCAL_RANK are per task: left out when the step's tasks share the container (pyxis sets them per task).
import type { HookContext, HookOutput } from './types.js'
import { emptyOutput } from './types.js'

/** The first host of a Slurm hostlist ("gpu[07-09,12],cpu1" → "gpu07"), what `scontrol show hostname | head -1` prints. */
export function firstHost (list: string): string | undefined {
  let depth = 0
  let end = list.length
  for (let i = 0; i < list.length; i++) {
    const c = list[i]
    if (c === '[') depth++
    else if (c === ']') depth--
    else if (c === ',' && depth === 0) { end = i; break }
  }
  const first = list.slice(0, end).trim()
  if (first === '') return undefined
  return first.replace(/\[([^\]]*)\]/g, (_, inner: string) => (inner.split(',')[0] ?? '').split('-')[0] ?? '')
}

export function pytorchEnviron (env: Readonly<Record<string, string>>, environ: readonly string[], shared: boolean): string[] {
  const has = (k: string): boolean => environ.some(l => l.startsWith(`${k}=`))
  if (!has('PYTORCH_VERSION')) return []
  const want: Array<[string, string | undefined]> = [
    ['MASTER_ADDR', firstHost(env.SLURM_STEP_NODELIST ?? env.SLURM_JOB_NODELIST ?? '')],
    ['MASTER_PORT', /^\d+$/.test(env.SLURM_JOB_ID ?? '') ? String(Number(env.SLURM_JOB_ID) % 4536 + 61000) : undefined],
    ['WORLD_SIZE', env.SLURM_NTASKS ?? env.SLURM_STEP_NUM_TASKS],
    ...(shared ? [] : [['RANK', env.SLURM_PROCID], ['LOCAL_RANK', env.SLURM_LOCALID]] as Array<[string, string | undefined]>),
    ['OMP_NUM_THREADS', Number(env.SLURM_STEP_NUM_TASKS ?? 0) > Number(env.SLURM_STEP_NUM_NODES ?? 0) ? '1' : undefined]
  ]
  return want.filter(([k, v]) => v !== undefined && v !== '' && !has(k)).map(([k, v]) => `${k}=${v ?? ''}`)
}

export function slurmPytorch (ctx: HookContext): HookOutput {
  const out = emptyOutput()
  if ((ctx.env.SLURM_JOB_ID ?? '') === '') return out
  out.environ = pytorchEnviron(ctx.env, ctx.environ, (ctx.env.PYXIS_VERSION ?? '') !== '')
  return out
}
