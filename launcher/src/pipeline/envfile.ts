// enroot's environment-file dialect (spec §5.2): `${VAR}` substitution, `envfmt` formatting, and the
// "later wins" merge. Pure: text and an environment in, KEY=VALUE lines out.
import { invalidArgument } from '../util/errors.js'

export type Env = Readonly<Record<string, string | undefined>>

/**
 * Only the braced form `${NAME}` is replaced (undefined → empty); `$NAME` stays as written. enroot does
 * this with sed so that image files cannot run code or reach anything but plain variables.
 */
export function substitute (text: string, env: Env): string {
  return text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => env[name] ?? '')
}

/**
 * enroot's envfmt: strip leading whitespace, drop comments and blank lines, drop lines that are not
 * `NAME=…` (so `export X=1` is dropped), drop the reserved `ENROOT_*` names, strip one pair of quotes
 * (enroot's sed accepts mismatched pairs, and so do we) with optional trailing whitespace.
 */
export function formatEnv (text: string | readonly string[]): string[] {
  const lines = typeof text === 'string' ? text.split('\n') : text
  const out: string[] = []
  for (const raw of lines) {
    const line = raw.replace(/^\s+/, '')
    if (line === '' || line.startsWith('#')) continue
    if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(line)) continue
    if (line.startsWith('ENROOT_')) continue
    const m = /^([A-Za-z_][A-Za-z0-9_]*=)["'](.*)["']\s*$/.exec(line)
    out.push(m === null ? line : `${m[1] as string}${m[2] as string}`)
  }
  return out
}

/** Merge KEY=VALUE lists; a later assignment wins and takes the later position (the order a reader sees last). */
export function mergeEnv (...lists: ReadonlyArray<readonly string[]>): string[] {
  const map = new Map<string, string>()
  for (const list of lists) {
    for (const line of list) {
      const key = line.slice(0, line.indexOf('='))
      map.delete(key)
      map.set(key, line)
    }
  }
  return [...map.values()]
}

const ENV_ARG = /^[A-Za-z_][A-Za-z0-9_]*(=|$)/

/** `-e KEY[=VAL]` as enroot validates it; `KEY` alone copies the host value (empty when unset). */
export function cliEnv (args: readonly string[], host: Env): string[] {
  return args.map(a => {
    if (!ENV_ARG.test(a)) throw invalidArgument(a)
    return a.includes('=') ? a : `${a}=${host[a] ?? ''}`
  })
}

/** Validation only (exec and start check all entries before doing anything). */
export function validateEnvArgs (args: readonly string[]): void {
  for (const a of args) if (!ENV_ARG.test(a)) throw invalidArgument(a)
}

/** KEY=VALUE lines to an object (later wins); for hooks that read the container environment. */
export function envToObject (lines: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (const l of lines) { const i = l.indexOf('='); if (i > 0) out[l.slice(0, i)] = l.slice(i + 1) }
  return out
}
