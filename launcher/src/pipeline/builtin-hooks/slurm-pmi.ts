// 50-slurm-pmi (extra, opt-in as in enroot): PMIx and PMI2 inside the container under Slurm (user-pain 11).
// Copies SLURM_*, PMIX_* (when the step uses PMIx) and PMI_* into the container environment, derives
// PMIX_MCA_{ptl,psec,gds} from the server's PMIX_{PTL_MODULE,SECURITY_MODE,GDS_MODULE} like enroot's hook,
// and binds the PMIx server directory. Beyond enroot: it also binds munge's socket directory, so that PMIx's
// munge security works without PMIX_MCA_psec=native (pyxis#88, #139), and when the container is shared by
// the step's tasks (pyxis) it leaves out the per-task variables, which would otherwise give every task the
// first task's rank once the container environment is imported (pyxis-behaviour §7.2).
import type { HookContext, HookOutput } from './types.js'
import { emptyOutput } from './types.js'
import { fstabOps, escapeField } from './util.js'
import { existsSync } from 'node:fs'

/** Variables that differ between the tasks of a step. */
export const PER_TASK = new Set(['SLURM_PROCID', 'SLURM_LOCALID', 'SLURM_TASK_PID', 'PMIX_RANK', 'PMI_RANK', 'PMI_FD', 'PMI_JOBID', 'CUDA_VISIBLE_DEVICES', 'GPU_DEVICE_ORDINAL'])

const MCA: ReadonlyArray<[string, string]> = [['PMIX_MCA_ptl', 'PMIX_PTL_MODULE'], ['PMIX_MCA_psec', 'PMIX_SECURITY_MODE'], ['PMIX_MCA_gds', 'PMIX_GDS_MODULE']]

export function pmiEnviron (env: Readonly<Record<string, string>>, shared: boolean): string[] {
  const keys = Object.keys(env).sort()
  const pick = (prefix: string): string[] => keys.filter(k => k.startsWith(prefix) && !(shared && PER_TASK.has(k))).map(k => `${k}=${env[k] ?? ''}`)
  const out = pick('SLURM_')
  const mpi = env.SLURM_MPI_TYPE ?? ''
  if ((mpi === '' || mpi.startsWith('pmix')) && keys.some(k => k.startsWith('PMIX_'))) {
    out.push(...pick('PMIX_'))
    for (const [mca, from] of MCA) if (env[mca] === undefined && env[from] !== undefined) out.push(`${mca}=${env[from]}`)
  }
  out.push(...pick('PMI_'))
  return out
}

export function pmiMounts (env: Readonly<Record<string, string>>, mungeDir = '/run/munge'): string[] {
  const out: string[] = []
  const tmp = env.PMIX_SERVER_TMPDIR
  if (tmp !== undefined && tmp !== '') out.push(`${escapeField(tmp)} ${escapeField(tmp)} none x-create=dir,bind,rw,nosuid,noexec,nodev,private,nofail`)
  if (existsSync(mungeDir)) out.push(`${escapeField(mungeDir)} ${escapeField(mungeDir)} none x-create=dir,bind,rw,nosuid,noexec,nodev,private,nofail,silent`)
  return out
}

export function slurmPmi (ctx: HookContext): HookOutput {
  const out = emptyOutput()
  if ((ctx.env.SLURM_JOB_ID ?? '') === '' || (ctx.env.SLURM_STEP_ID ?? '') === '') return out
  out.environ = pmiEnviron(ctx.env, (ctx.env.PYXIS_VERSION ?? '') !== '')
  out.fstab = fstabOps(pmiMounts(ctx.env), 'hooks.d/50-slurm-pmi.sh')
  return out
}
