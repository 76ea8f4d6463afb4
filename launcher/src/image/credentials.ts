// $ENROOT_CONFIG_PATH/.credentials: netrc, one `machine H login U password P` entry per line (spec §3.2).
//
// enroot's `$` substitution is kept: on a line with at least six fields whose password field starts with
// `$`, everything after the fifth field goes through the shell at import time, so `$(cat token)` or
// `$(aws ecr get-login-password)` work. All such lines are expanded by ONE bash, only when the file has any.
//
// Improvement over enroot (which hands the whole file to curl and lets curl match whatever host it is
// talking to): entries are matched per host on purpose, once for the registry and once for the token realm
// host, so a realm on another host (NGC's authn.nvidia.com) gets its own entry and never the registry's.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { EnrootError } from '../util/errors.js'
import { childProcess } from '../util/builtins.js'

export interface NetrcEntry { machine: string, login: string, password?: string }
export interface Credential { login: string, password: string }

const isDollarLine = (f: readonly string[]): boolean => f.length >= 6 && (f[5] as string).startsWith('$')

/** The text after the fifth whitespace-separated field of a line (what enroot hands to `echo`). */
function afterFifthField (line: string): string {
  const m = /^\s*(?:\S+\s+){5}(.*?)\s*$/.exec(line)
  return m?.[1] ?? ''
}

/** Expands `$` passwords with one bash run; `env` is the environment the shell sees. */
export function expandDollarPasswords (texts: readonly string[], env: Readonly<Record<string, string>>): string[] {
  if (texts.length === 0) return []
  const script = texts.map(t => `printf '%s\\0' "$(echo ${t})"`).join('\n')
  const r = childProcess().spawnSync('bash', ['--norc', '--noprofile', '-c', script], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  if (r.status !== 0 || r.error !== undefined) {
    throw new EnrootError('AUTH', 'Could not evaluate a password in the credentials file', {
      cause: r.error, hint: String(r.stderr ?? '').trim().split('\n')[0] ?? undefined
    })
  }
  const parts = r.stdout.split('\0')
  return texts.map((_, i) => parts[i] ?? '')
}

/** Parses the file's text into entries; `$` passwords are expanded (one bash) when `env` is given. */
export function parseCredentials (text: string, env?: Readonly<Record<string, string>>): NetrcEntry[] {
  const lines = text.split('\n')
  const dollar: Array<{ index: number, text: string }> = []
  const entries: Array<NetrcEntry & { line: number }> = []
  let current: (NetrcEntry & { line: number }) | undefined
  lines.forEach((line, n) => {
    const f = line.trim().split(/\s+/).filter(Boolean)
    if (f[0] === 'machine' && isDollarLine(f)) {
      current = { machine: f[1] as string, login: f[3] as string, line: n }
      entries.push(current)
      dollar.push({ index: entries.length - 1, text: afterFifthField(line) })
      return
    }
    // ordinary netrc tokens; an entry may continue on the next lines (login/password keywords)
    for (let i = 0; i < f.length; i++) {
      const key = f[i]
      const val = f[i + 1]
      if (key === 'machine' && val !== undefined) { current = { machine: val, login: '', line: n }; entries.push(current); i++ } else if (key === 'default') { current = undefined } else if (key === 'login' && val !== undefined && current !== undefined) { current.login = val; i++ } else if (key === 'password' && val !== undefined && current !== undefined) { current.password = val; i++ }
    }
  })
  if (env !== undefined && dollar.length > 0) {
    const values = expandDollarPasswords(dollar.map(d => d.text), env)
    dollar.forEach((d, i) => { (entries[d.index] as NetrcEntry).password = values[i] })
  }
  return entries.map(({ line: _line, ...e }) => e)
}

/** The file's text, '' when absent (for the user inference of uri.ts). */
export function readCredentialsText (configPath: string): string {
  try { return readFileSync(join(configPath, '.credentials'), 'utf8') } catch { return '' }
}

/** The credentials of one import: read once, `$` expanded once, looked up per host. */
export class CredentialStore {
  readonly path: string
  readonly text: string
  private entries: NetrcEntry[] | undefined
  private readonly env: Readonly<Record<string, string>>

  constructor (configPath: string, env: Readonly<Record<string, string>>) {
    this.path = join(configPath, '.credentials')
    this.env = env
    this.text = readCredentialsText(configPath)
  }

  static empty (): CredentialStore { return new CredentialStore('/nonexistent', {}) }

  /**
   * The entry for `host` (no port), preferring one whose login is `user`, else the host's first. `$` passwords are evaluated on
   * the first lookup that finds an entry, so an anonymous pull never runs the user's commands.
   */
  lookup (host: string, user?: string): Credential | undefined {
    const candidates = parseCredentials(this.text).filter(e => e.machine === host)
    if (candidates.length === 0) return undefined
    this.entries ??= parseCredentials(this.text, this.env)
    const all = this.entries.filter(e => e.machine === host)
    // like curl's netrc matching: the entry with that login if any, else the host's first entry
    const e = (user === undefined ? undefined : all.find(x => x.login === user)) ?? all[0]
    if (e === undefined || e.password === undefined) return undefined
    return { login: e.login, password: e.password }
  }
}
