// 50-slurm-pmi (extra, opt-in as in enroot): PMIx and PMI2 inside the container under Slurm (user-pain 11).
// Copies SLURM_*, PMIX_* (when the step uses PMIx) and PMI_* into the container environment, derives
// PMIX_MCA_{ptl,psec,gds} from the server's PMIX_{PTL_MODULE,SECURITY_MODE,GDS_MODULE} like enroot's hook,
// and binds the PMIx server directory. Beyond enroot: it also binds munge's socket directory, so that PMIx's
// munge security works without PMIX_MCA_psec=native (pyxis#88, #139), and when the container is shared by
// the step's tasks (pyxis) it leaves out the per-task variables, which would otherwise give every task the
// first task's rank once the container environment is imported (pyxis-behaviour §7.2).
//
// Under the shim the container is started once per step and node, in slurm_spank_user_init, before any task
// exists. Slurm's mpi/pmix plugin has created the step's PMIx directories by then (mpi prefork), but it puts
// PMIX_SERVER_TMPDIR and the other PMIX_* variables only into each task's environment, after user_init: the
// hook never sees them. So in a PMIx step without PMIX_SERVER_TMPDIR the hook finds the two directories the
// way the plugin names them, and binds them (measured with Slurm 22.05 and PMIx 4.2):
//   server: <SlurmdSpoolDir>/pmix.<job>.<step>, which holds the shared-memory data store (gds ds12/ds21) the
//           clients map at PMIx_Init (without it: "PMIX ERROR ... gds_ds12_lock_pthread.c");
//   client: <base>/spmix_appdir_<uid>_<job>.<step>, base = mpi.conf PMIxCliTmpDirBase, else the job's
//           SLURM_PMIX_TMPDIR, else TMPDIR, else /tmp. The PMIx job tmpdir: Open MPI makes its session
//           directory there (without it, when the path is not creatable in the image: ORTE_ERROR_LOG in
//           session_dir.c).
// The tasks keep their own PMIX_* (the shim's join never replaces them). When the server directory cannot be
// found, PMIX_MCA_gds=hash makes the clients ask the server over its socket instead of mapping the store.
import type { HookContext, HookOutput } from './types.js'
import { emptyOutput } from './types.js'
import { fstabOps, escapeField } from './util.js'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { hostname } from 'node:os'

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

/** `Key=value` settings of a Slurm configuration file (keys lower-cased; Include lines are not followed). */
function slurmSettings (file: string): Map<string, string> {
  const out = new Map<string, string>()
  let text: string
  try { text = readFileSync(file, 'utf8') } catch { return out }
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim()
    const m = /^([A-Za-z]+)\s*=\s*(.*)$/.exec(line)
    if (m?.[1] !== undefined && m[2] !== undefined && !out.has(m[1].toLowerCase())) out.set(m[1].toLowerCase(), m[2].trim().replace(/^"(.*)"$/, '$1'))
  }
  return out
}

/** The node name slurmd runs as (%n): SLURMD_NODENAME is only in task environments, hence the fallbacks. */
function nodeName (env: Readonly<Record<string, string>>): string {
  if ((env.SLURMD_NODENAME ?? '') !== '') return env.SLURMD_NODENAME as string
  // with topology/none SLURM_TOPOLOGY_ADDR is the node name; with a tree it ends with it
  if ((env.SLURM_TOPOLOGY_ADDR_PATTERN ?? '').split('.').pop() === 'node' && (env.SLURM_TOPOLOGY_ADDR ?? '') !== '') return (env.SLURM_TOPOLOGY_ADDR as string).split('.').pop() as string
  return hostname().split('.')[0] as string
}

/**
 * The step's PMIx server and client directories on this node, as mpi/pmix names them, when they exist.
 * `conf` is slurm.conf (SLURM_CONF, else /etc/slurm/slurm.conf); mpi.conf is read next to it.
 */
export function pmixStepDirs (env: Readonly<Record<string, string>>, uid: number): { server?: string, client?: string } {
  const job = env.SLURM_JOB_ID ?? ''
  const step = env.SLURM_STEP_ID ?? ''
  if (job === '' || step === '') return {}
  const conf = (env.SLURM_CONF ?? '') !== '' ? env.SLURM_CONF as string : '/etc/slurm/slurm.conf'
  const node = nodeName(env)
  const host = hostname()
  const spool = (slurmSettings(conf).get('slurmdspooldir') ?? '/var/spool/slurmd').replace(/%n/g, node).replace(/%h/g, host)
  const cliBase = slurmSettings(join(dirname(conf), 'mpi.conf')).get('pmixclitmpdirbase') ??
    [env.SLURM_PMIX_TMPDIR, env.TMPDIR].find(v => v !== undefined && v !== '') ?? '/tmp'
  const jobUid = /^\d+$/.test(env.SLURM_JOB_UID ?? '') ? env.SLURM_JOB_UID as string : String(uid)
  const server = join(spool, `pmix.${job}.${step}`)
  const client = join(cliBase, `spmix_appdir_${jobUid}_${job}.${step}`)
  return { ...(existsSync(server) ? { server } : {}), ...(existsSync(client) ? { client } : {}) }
}

const bindLine = (dir: string): string => `${escapeField(dir)} ${escapeField(dir)} none x-create=dir,bind,rw,nosuid,noexec,nodev,private,nofail`

export function slurmPmi (ctx: HookContext): HookOutput {
  const out = emptyOutput()
  if ((ctx.env.SLURM_JOB_ID ?? '') === '' || (ctx.env.SLURM_STEP_ID ?? '') === '') return out
  out.environ = pmiEnviron(ctx.env, (ctx.env.PYXIS_VERSION ?? '') !== '')
  const mounts = pmiMounts(ctx.env)
  const mpi = ctx.env.SLURM_MPI_TYPE ?? ''
  if ((ctx.env.PMIX_SERVER_TMPDIR ?? '') === '' && mpi.startsWith('pmix')) {
    // started before the tasks (the shim's user_init): find the directories ourselves (see the top)
    const dirs = pmixStepDirs(ctx.env, ctx.uid)
    if (dirs.server !== undefined) mounts.unshift(bindLine(dirs.server))
    else if (ctx.env.PMIX_MCA_gds === undefined) out.environ.push('PMIX_MCA_gds=hash')
    if (dirs.client !== undefined) mounts.unshift(bindLine(dirs.client))
  }
  out.fstab = fstabOps(mounts, 'hooks.d/50-slurm-pmi.sh')
  return out
}
