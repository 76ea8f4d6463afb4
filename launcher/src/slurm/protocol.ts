// The shim ↔ launcher protocol (doc/slurm.md), the pure half: the arguments spank_enroot.so passes to
// `enroot slurm-launch|slurm-teardown|slurm-epilog`, container naming (pyxis §4), image resolution,
// the start configuration script (pyxis §3.4) and the status lines written on the shim's fd.
import { isAbsolute, join } from 'node:path'
import { EnrootError } from '../util/errors.js'
import { escapeField } from '../pipeline/builtin-hooks/util.js'
import { str, bool, list, type OptionSpec, type Parsed } from '../util/args.js'

export const STEP_OPTIONS: readonly OptionSpec[] = [
  { name: 'job', long: 'job-id', value: true },
  { name: 'step', long: 'step-id', value: true },
  { name: 'localTasks', long: 'local-tasks', value: true },
  { name: 'totalTasks', long: 'total-tasks', value: true },
  { name: 'statusFd', long: 'status-fd', value: true },
  { name: 'runtimePath', long: 'runtime-path', value: true },
  { name: 'scope', long: 'scope', value: true },
  { name: 'cache', long: 'cache', value: true },
  { name: 'cwd', long: 'cwd', value: true },
  { name: 'image', long: 'image', value: true },
  { name: 'name', long: 'name', value: true },
  { name: 'mount', long: 'mount', value: true, repeat: true },
  { name: 'workdir', long: 'workdir', value: true },
  { name: 'save', long: 'save', value: true },
  { name: 'entrypoint', long: 'entrypoint', value: true },
  { name: 'entrypointLog', long: 'entrypoint-log' },
  { name: 'env', long: 'env', value: true, repeat: true },
  { name: 'importer', long: 'importer', value: true },
  { name: 'useEnrootLoad', long: 'use-enroot-load' },
  { name: 'useSquashfuse', long: 'use-squashfuse' },
  { name: 'pid', long: 'pid', value: true },
  { name: 'allStarted', long: 'all-started', value: true },
  { name: 'service', long: 'service', value: true },
  { name: 'serviceIdle', long: 'service-idle', value: true }
]

export type NameFlag = 'auto' | 'create' | 'exec' | 'no_exec'

export interface StepRequest {
  job: number
  /** 4294967291 (SLURM_BATCH_SCRIPT) for the batch step */
  step: number
  localTasks: number
  totalTasks: number
  statusFd?: number
  runtimePath: string
  scope: 'global' | 'job'
  cache: string
  cwd?: string
  image?: string
  name?: { name: string, flag: NameFlag }
  /** enroot fstab lines, already escaped by the shim: "SRC DST OPTIONS" */
  mounts: string[]
  workdir?: string
  save?: string
  entrypoint: boolean
  entrypointLog: boolean
  env: string[]
  importer?: string
  useEnrootLoad: boolean
  useSquashfuse: boolean
  /** slurm-teardown only */
  pid?: number
  allStarted: boolean
  /** slurm-launch: the socket of this job's launcher service on the node, to start after this step's start */
  service?: string
  /** how long that service waits for a next step, in seconds */
  serviceIdle: number
}

const protocolError = (what: string): EnrootError => new EnrootError('USAGE', `slurm protocol: ${what}`)

function uint (p: Parsed, name: string, required: boolean): number | undefined {
  const v = str(p, name)
  if (v === undefined) { if (required) throw protocolError(`missing --${name}`); return undefined }
  if (!/^\d+$/.test(v)) throw protocolError(`invalid number: ${v}`)
  return Number(v)
}

export function parseStepRequest (p: Parsed): StepRequest {
  const scope = str(p, 'scope') ?? 'global'
  if (scope !== 'global' && scope !== 'job') throw protocolError(`invalid scope: ${scope}`)
  let name: StepRequest['name']
  const n = str(p, 'name')
  if (n !== undefined) {
    const colon = n.indexOf(':')
    const flag = colon === -1 ? 'auto' : n.slice(colon + 1)
    if (!['auto', 'create', 'exec', 'no_exec'].includes(flag)) throw protocolError(`invalid name flag: ${flag}`)
    name = { name: colon === -1 ? n : n.slice(0, colon), flag: flag as NameFlag }
  }
  const opt = <K extends keyof StepRequest>(k: K, v: StepRequest[K] | undefined): Partial<StepRequest> => v === undefined ? {} : { [k]: v }
  return {
    job: uint(p, 'job', true) as number,
    step: uint(p, 'step', true) as number,
    localTasks: uint(p, 'localTasks', false) ?? 1,
    totalTasks: uint(p, 'totalTasks', false) ?? 1,
    ...opt('statusFd', uint(p, 'statusFd', false)),
    runtimePath: str(p, 'runtimePath') ?? '/run/pyxis',
    scope,
    cache: str(p, 'cache') ?? 'per-user',
    ...opt('cwd', str(p, 'cwd')),
    ...opt('image', str(p, 'image')),
    ...opt('name', name),
    mounts: list(p, 'mount'),
    ...opt('workdir', str(p, 'workdir')),
    ...opt('save', str(p, 'save')),
    entrypoint: str(p, 'entrypoint') === 'y',
    entrypointLog: bool(p, 'entrypointLog'),
    env: list(p, 'env'),
    ...opt('importer', str(p, 'importer')),
    useEnrootLoad: bool(p, 'useEnrootLoad'),
    useSquashfuse: bool(p, 'useSquashfuse'),
    ...opt('pid', uint(p, 'pid', false)),
    allStarted: str(p, 'allStarted') === 'y',
    ...opt('service', str(p, 'service')),
    serviceIdle: uint(p, 'serviceIdle', false) ?? 60
  } as StepRequest
}

/** pyxis §4: the name users see in `enroot list` (and must prefix with pyxis_ when they use enroot by hand). */
export function containerName (r: Pick<StepRequest, 'job' | 'step' | 'scope' | 'name'>): string {
  const base = r.name?.name ?? `${r.job}.${r.step}`
  return r.scope === 'job' ? `pyxis_${r.job}_${base}` : `pyxis_${base}`
}

/** Names a job-scoped epilog removes: exactly pyxis_<job>_<something>. */
export function isJobContainer (name: string, job: number): boolean {
  const prefix = `pyxis_${job}_`
  return name.startsWith(prefix) && name.length > prefix.length
}

export type ImageSource = { kind: 'squashfs', path: string } | { kind: 'registry', uri: string }

/** A value starting with . or / is a squashfs on the node (relative to the job's cwd); else a registry reference. */
export function imageSource (image: string, cwd: string | undefined): ImageSource {
  if (image.startsWith('.') || image.startsWith('/')) {
    if (isAbsolute(image)) return { kind: 'squashfs', path: image }
    if (cwd === undefined) throw new EnrootError('INVALID', `relative image path used, but job's cwd is unset: ${image}`)
    return { kind: 'squashfs', path: join(cwd, image) }
  }
  return { kind: 'registry', uri: image.startsWith('docker://') || image.startsWith('dockerd://') ? image : `docker://${image}` }
}

/** --container-save: relative to the job's cwd. */
export function savePath (save: string, cwd: string | undefined): string {
  if (isAbsolute(save)) return save
  if (cwd === undefined) throw new EnrootError('INVALID', 'container export: relative path used, but job\'s cwd is unset')
  return join(cwd, save)
}

/** The content of the file bound over the container's /etc/rc.local without the entrypoint (enroot's /etc/rc sources it). */
export const NO_ENTRYPOINT_RC = 'exec "$@"\n'

/**
 * What pyxis's `enroot start --conf` script would print, as data for buildPlan (no bash per start): the
 * user's fstab lines; without the entrypoint, a read-only bind of `rcLocal` (NO_ENTRYPOINT_RC) over
 * /etc/rc.local, so the container's rc execs the command directly (pyxis writes that file into the rootfs,
 * where it stays in a named container; a bind leaves the filesystem as it was); and the --container-env
 * names the job sets, so an entrypoint sees them too.
 */
export function startData (r: Pick<StepRequest, 'mounts' | 'entrypoint' | 'env'>, jobEnv: Readonly<Record<string, string | undefined>>, rcLocal: string): { environ: string[], mounts: string[] } {
  const mounts = [...r.mounts]
  if (!r.entrypoint) mounts.push(`${escapeField(rcLocal)} /etc/rc.local none x-create=file,bind,ro,nosuid,nodev,private`)
  const environ = r.env.flatMap(name => {
    const v = jobEnv[name]
    return v !== undefined && v !== '' ? [`${name}=${v}`] : []
  })
  return { environ, mounts }
}

export const readyLine = (pid: number, keep: boolean): string => `READY ${pid}${keep ? ' keep' : ''}\n`
export const errorLine = (message: string): string => `ERROR ${message.replace(/\s*\n\s*/g, ' ').trim()}\n`

/** `enroot list -f`: NAME PID ... rows; a container line without a PID is stopped. Returns name → first pid. */
export function parseFancyList (text: string): Map<string, number | undefined> {
  const out = new Map<string, number | undefined>()
  for (const line of text.split('\n').slice(1)) {
    const m = /^(\S+)(?:\s+(\d+))?/.exec(line)
    if (m === null) continue
    const name = m[1] as string
    if (!out.has(name) || out.get(name) === undefined) out.set(name, m[2] === undefined ? undefined : Number(m[2]))
  }
  return out
}
