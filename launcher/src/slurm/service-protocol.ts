// The launcher service's wire format (doc/slurm.md, "The launcher service"), the pure half. The client is
// spank_enroot.so's launcher child (spank/service.c), which would otherwise exec `enroot slurm-launch`:
//   client → service: NUL-terminated fields: MAGIC, the kind ("launch" or "quit"), the launcher's argv
//                     (without argv[0]), an empty field, the environment (KEY=VALUE), an empty field;
//                     then nothing more: closing its side means "give up" (the shim killed it).
//   service → client: lines: "A" once the request is taken; "L <text>" a line for the launcher's log
//                     (stderr); "S <status line>" for fd 3; "X <code>" the exit status, last.
// A client that reads end-of-file before any "A" runs the launcher itself instead (an idle service that
// was just exiting, or one of another version: the magic carries the version).

export const SERVICE_MAGIC = 'ENROOT-SERVICE-1'

export interface ServiceRequest {
  kind: 'launch' | 'quit'
  /** the launcher's arguments after argv[0]: the verb, then its options */
  argv: string[]
  env: Record<string, string>
}

/** The request once all of it has arrived; undefined while incomplete; throws on anything else. */
export function parseServiceRequest (buf: Buffer): ServiceRequest | undefined {
  const fields: string[] = []
  let at = 0
  for (let nul = buf.indexOf(0, at); nul !== -1; nul = buf.indexOf(0, at)) {
    fields.push(buf.toString('utf8', at, nul))
    at = nul + 1
  }
  if (fields.length >= 1 && fields[0] !== SERVICE_MAGIC) throw new Error('not a launcher service request')
  if (fields.length >= 2 && fields[1] !== 'launch' && fields[1] !== 'quit') throw new Error(`unknown request kind: ${fields[1] ?? ''}`)
  const endArgv = fields.indexOf('', 2)
  if (endArgv === -1) return undefined
  const endEnv = fields.indexOf('', endArgv + 1)
  if (endEnv === -1) return undefined
  if (at !== buf.length) throw new Error('data after the request')
  const env: Record<string, string> = {}
  for (const kv of fields.slice(endArgv + 1, endEnv)) {
    const eq = kv.indexOf('=')
    if (eq > 0) env[kv.slice(0, eq)] = kv.slice(eq + 1)
  }
  return { kind: fields[1] as ServiceRequest['kind'], argv: fields.slice(2, endArgv), env }
}

/** The client reads lines into a fixed buffer: keep each one well inside it. */
const MAX_LINE = 4000

/** Reply lines for a tag; log text becomes one "L" line per line of text. */
export function replyLines (tag: 'A' | 'L' | 'S' | 'X', text = ''): string {
  const lines = tag === 'L' || tag === 'S' ? text.replace(/\n$/, '').split('\n') : [text]
  return lines.map(l => `${tag}${l === '' && tag === 'A' ? '' : ' '}${l.slice(0, MAX_LINE)}\n`).join('')
}

/**
 * What spank_enroot.so withholds from the launcher's environment (spank/launcher.c, `deny`): the job may
 * not set them, so what the launcher has for them comes from the site (a launcher wrapper's settings,
 * slurmstepd's PATH). A request's environment is the job's as the shim built it, plus the service's own
 * values for these, as a launcher started through the same wrapper would have had.
 */
export const SHIM_DENIED = [
  'PATH', 'LD_LIBRARY_PATH', 'LD_PRELOAD', 'SLURM_PROCID', 'SLURM_LOCALID', 'SLURM_TASK_PID', 'PMIX_RANK',
  'PMI_FD', 'ENROOT_LIBRARY_PATH', 'ENROOT_SYSCONF_PATH', 'ENROOT_RUNTIME_PATH', 'ENROOT_CACHE_PATH',
  'ENROOT_DATA_PATH', 'ENROOT_TEMP_PATH', 'ENROOT_ZSTD_OPTIONS', 'ENROOT_TRANSFER_RETRIES',
  'ENROOT_CONNECT_TIMEOUT', 'ENROOT_MAX_CONNECTIONS', 'ENROOT_ALLOW_HTTP'
] as const

/** Variables with these prefixes are Node's own settings: denied to the launcher too (a prefix rule). */
export const SHIM_DENIED_PREFIXES = ['NODE_', 'UV_'] as const

export function requestEnv (jobEnv: Readonly<Record<string, string>>, serviceEnv: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const env = { ...jobEnv }
  for (const k of [...SHIM_DENIED, ...Object.keys(serviceEnv).filter(k => SHIM_DENIED_PREFIXES.some(p => k.startsWith(p)))]) {
    const v = serviceEnv[k]
    if (v !== undefined && !Object.hasOwn(env, k)) env[k] = v
  }
  return env
}
