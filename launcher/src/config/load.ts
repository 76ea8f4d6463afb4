// enroot's configuration model (spec §1): enroot.conf then enroot.conf.d/*.conf, a non-empty environment
// variable beats the file, directives (--conf, batch) beat both, CLI flags beat everything, falsy values unset.
import { readFileSync, readdirSync, statSync, accessSync, constants } from 'node:fs'
import { childProcess, os } from '../util/builtins.js'
import { join, delimiter } from 'node:path'
import { SETTINGS, XDG_DEFAULTS, type DefaultContext } from './settings.js'
import { SYSCONFDIR, LIBDIR, VERSION } from './install-paths.js'
import { EnrootError } from '../util/errors.js'

export type Env = Readonly<Record<string, string | undefined>>

/** enroot accepts these keys from configuration files; everything else (comments included) is ignored. */
export function isConfigKey (key: string): boolean {
  return /^ENROOT_[A-Z_]+$/.test(key) || key.startsWith('MELLANOX_') || key.startsWith('NVIDIA_') ||
    key === 'SSL_CERT_DIR' || key === 'SSL_CERT_FILE' ||
    key === 'all_proxy' || key === 'no_proxy' || key === 'http_proxy' || key === 'https_proxy'
}

/** `n no N NO No f false F False FALSE`; `0` is not falsy (enroot quirk kept: scripts rely on it). */
export const isFalsy = (v: string): boolean => /^(no?|N[oO]?|[fF](alse)?|FALSE)$/.test(v)

export interface ConfigLine { key: string, value: string, file: string }

/** Split each line on the first run of space, tab or '=' (enroot's rule). */
export function parseConfigText (text: string, file: string, directivesOnly = false): ConfigLine[] {
  const out: ConfigLine[] = []
  for (const raw of text.split('\n')) {
    let line = raw.replace(/^\s+/, '')
    if (directivesOnly) {
      if (!line.startsWith('#ENROOT_')) continue
      line = line.slice(1)
    }
    const m = /^([^\s=]+)[\s=]+(.*)$/.exec(line)
    if (m === null) continue
    const key = m[1] as string
    if (!isConfigKey(key)) continue
    out.push({ key, value: (m[2] as string).replace(/\s+$/, ''), file })
  }
  return out
}

const SHELL_SPECIAL = /[$`\\"'(){};&|<>*?[\]~!#]/

/**
 * enroot evaluates each value with `eval echo <value>`. Plain values only need echo's whitespace collapse;
 * anything with shell syntax goes through one bash for all values, so start-up stays spawn-free normally.
 */
export function evaluateValues (values: readonly string[], env: Env, files: readonly string[]): string[] {
  const needShell = values.some(v => SHELL_SPECIAL.test(v))
  if (!needShell && files.length === 0) return values.map(v => v.split(/\s+/).filter(Boolean).join(' '))
  let script = ''
  for (const f of files) script += `bash -n ${shq(f)} 2>/dev/null || { printf 'Invalid configuration file: %s\\n' ${shq(f)}; exit 3; }\n`
  for (const v of values) script += `printf '%s\\0' "$(eval echo ${v})"\n`
  const r = childProcess().spawnSync('bash', ['--norc', '--noprofile', '-c', script], { env: cleanEnv(env), encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
  if (r.status === 3) throw new EnrootError('CONFIG', r.stdout.trim())
  if (r.status !== 0 || r.error !== undefined) throw new EnrootError('CONFIG', `Could not evaluate configuration values (bash exited ${String(r.status)})`, { cause: r.error })
  const parts = r.stdout.split('\0')
  return values.map((_, i) => parts[i] ?? '')
}

const RESERVED = new Set(['if', 'then', 'else', 'elif', 'fi', 'case', 'esac', 'for', 'select', 'while', 'until', 'do', 'done',
  'in', 'function', 'time', '{', '}', '!', '[[', ']]', 'coproc'])

/**
 * Whether `bash -n` could reject the file: only when it has shell syntax. Lines of plain words (no quote,
 * operator, expansion or comment character, and no reserved word where a command goes) always parse, so
 * the usual enroot.conf needs no bash at all; anything else is left to bash itself.
 */
export function needsSyntaxCheck (text: string): boolean {
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) continue
    if (SHELL_SPECIAL.test(line)) return true
    if (RESERVED.has(line.split(/\s+/)[0] as string)) return true
  }
  return false
}

export const shq = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`

function cleanEnv (env: Env): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(env)) if (v !== undefined) out[k] = v
  return out
}

export function configFiles (sysconfdir: string): string[] {
  const files: string[] = []
  const main = join(sysconfdir, 'enroot.conf')
  if (isFile(main)) files.push(main)
  let extra: string[] = []
  try { extra = readdirSync(join(sysconfdir, 'enroot.conf.d')).filter(n => n.endsWith('.conf')).sort() } catch {}
  for (const n of extra) {
    const p = join(sysconfdir, 'enroot.conf.d', n)
    if (isFile(p)) files.push(p)
  }
  return files
}

function isFile (p: string): boolean {
  try { return statSync(p).isFile() } catch { return false }
}

function onPath (env: Env) {
  return (prog: string): boolean => {
    for (const dir of (env.PATH ?? '/usr/bin:/bin').split(delimiter)) {
      try { accessSync(join(dir, prog), constants.X_OK); return true } catch {}
    }
    return false
  }
}

export interface Config {
  readonly version: string
  readonly sysconfdir: string
  readonly configFile: string
  /** the environment given to hooks and helpers: the caller's, plus every exported setting */
  readonly env: Readonly<Record<string, string>>
  get (key: string): string | undefined
  /** truthiness everywhere is "set and non-empty" (after the falsy unset) */
  flag (key: string): boolean
  int (key: string): number
  /** a new config with values forced (directives with overwrite, or CLI flags), falsy rule re-applied */
  with (overrides: Readonly<Record<string, string>>): Config
  /** the ENROOT_* keys that are set, sorted (for `enroot info`) */
  exported (): Array<[string, string]>
}

export interface LoadOptions {
  env?: Env
  sysconfdir?: string
  uid?: number
}

function buildConfig (env: Record<string, string>, sysconfdir: string): Config {
  for (const [k, v] of Object.entries(env)) if (k.startsWith('ENROOT_') && isFalsy(v)) delete env[k]
  const frozen = Object.freeze(env)
  const cfg: Config = {
    version: VERSION,
    sysconfdir,
    configFile: join(sysconfdir, 'enroot.conf'),
    env: frozen,
    get: (key) => frozen[key],
    flag: (key) => (frozen[key] ?? '') !== '',
    int (key) {
      const v = frozen[key] ?? ''
      if (!/^\d+$/.test(v)) throw new EnrootError('CONFIG', `Invalid argument: ${key}=${v}`, { hint: `${key} must be a non-negative integer` })
      return Number(v)
    },
    with (overrides) { return buildConfig({ ...frozen, ...overrides }, sysconfdir) },
    exported () { return Object.entries(frozen).filter(([k]) => k.startsWith('ENROOT_')).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0) }
  }
  return Object.freeze(cfg)
}

export function loadConfig (opts: LoadOptions = {}): Config {
  const base = cleanEnv(opts.env ?? process.env)
  const sysconfdir = opts.sysconfdir ?? SYSCONFDIR
  const uid = opts.uid ?? (process.getuid?.() ?? 0)
  const files = configFiles(sysconfdir)
  const lines: ConfigLine[] = []
  const nonEmpty: string[] = []   // the files bash must check (`bash -n`)
  for (const f of files) {
    const text = readFileSync(f, 'utf8')
    const parsed = parseConfigText(text, f)
    lines.push(...parsed)
    if (needsSyntaxCheck(text)) nonEmpty.push(f)
  }
  const values = evaluateValues(lines.map(l => l.value), base, nonEmpty)
  const fromFile: Record<string, string> = {}
  lines.forEach((l, i) => { fromFile[l.key] = values[i] ?? '' })

  const env: Record<string, string> = { ...base }
  // A non-empty environment variable beats the file; an empty one is overwritten.
  for (const [k, v] of Object.entries(fromFile)) if ((env[k] ?? '') === '') env[k] = v

  const home = env.HOME ?? '/'
  for (const [k, def] of XDG_DEFAULTS) if ((env[k] ?? '') === '') env[k] = def(home, uid)

  const ctx: DefaultContext = { env, uid, get nproc () { return os().availableParallelism() }, sysconfdir, libdir: LIBDIR, onPath: onPath(env) }
  for (const s of SETTINGS) {
    if ((env[s.key] ?? '') !== '') continue
    const v = s.key === 'ENROOT_RUNTIME_PATH' ? defaultRuntimePath(env, uid) : s.value(ctx, env)
    if (v !== undefined) env[s.key] = v
  }
  env.ENROOT_VERSION = VERSION
  return buildConfig(env, sysconfdir)
}

/**
 * enroot defaults XDG_RUNTIME_DIR to /run, which a normal user cannot write (enroot#23, pyxis#62).
 * We keep ${XDG_RUNTIME_DIR}/enroot when it is set, use /run/enroot for root, /run/user/<uid>/enroot when
 * logind made that directory, and otherwise a per-user directory under the temporary path.
 */
function defaultRuntimePath (env: Record<string, string>, uid: number): string {
  if ((env.XDG_RUNTIME_DIR ?? '') !== '') return `${env.XDG_RUNTIME_DIR}/enroot`
  if (uid === 0) return '/run/enroot'
  try { if (statSync(`/run/user/${uid}`).uid === uid) return `/run/user/${uid}/enroot` } catch {}
  const tmp = (env.TMPDIR ?? '') !== '' ? env.TMPDIR : '/tmp'
  return `${tmp}/enroot-runtime-${uid}`
}

/** Load `#ENROOT_*` directives from a --conf or batch script (overwrite mode). */
export function loadDirectives (cfg: Config, file: string): Config {
  const text = readFileSync(file, 'utf8')
  const lines = parseConfigText(text, file, true)
  if (lines.length === 0) return cfg
  const values = evaluateValues(lines.map(l => l.value), cfg.env, [])
  const over: Record<string, string> = {}
  lines.forEach((l, i) => { over[l.key] = values[i] ?? '' })
  return cfg.with(over)
}
