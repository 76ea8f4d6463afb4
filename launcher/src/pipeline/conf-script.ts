// The config script of `start --conf FILE` and `batch CONFIG` (spec §5.5): `#ENROOT_*` directives, and the
// functions environ(), mounts(), rc() and hooks(). The first three are run here, in one bash, and their
// output becomes data; hooks() becomes a HookSpec that the engine runs like an executable hook.
import { statSync, realpathSync } from 'node:fs'
import { childProcess } from '../util/builtins.js'
import type { HookSpec } from '../runtime/plan-types.js'
import { EnrootError, invalidArgument, noSuchFile } from '../util/errors.js'
import { log } from '../util/log.js'

/** The file must exist (after realpath) and pass `bash -n`; syntax errors are shown as warnings first. */
export function checkConfScript (file: string): string {
  let path: string
  try {
    path = realpathSync(file)
    if (!statSync(path).isFile()) throw new Error('not a file')
  } catch {
    throw noSuchFile(file)
  }
  const r = childProcess().spawnSync('bash', ['-n', path], { encoding: 'utf8' })
  if (r.error !== undefined) throw new EnrootError('UNSUPPORTED', 'Command not found: bash', { cause: r.error })
  if (r.status !== 0) {
    for (const line of r.stderr.split('\n')) if (line !== '') log.warn(line)
    throw invalidArgument(file)
  }
  return path
}

export interface ConfOutput {
  /** environ() output, KEY=VAL lines as printed (not substituted; envfmt applies later) */
  environ: string
  /** mounts() output, fstab lines (not substituted) */
  mounts: string
  /** the body of rc(), when defined */
  rc?: string
  /** whether hooks() is defined */
  hooks: boolean
}

// Sourced with the container command as "$@" under `set -euo pipefail` (enroot's shell options carry over).
// Each section ends with a NUL so any text can come back; `declare -f rc` gives the function's body.
const RUNNER = `set -euo pipefail
source "$0"
if declare -F environ >/dev/null; then environ; fi; printf '\\0'
if declare -F mounts >/dev/null; then mounts; fi; printf '\\0'
if declare -F rc >/dev/null; then printf 'y'; declare -f rc | sed '1,2d;$d'; fi; printf '\\0'
if declare -F hooks >/dev/null; then printf 'y'; fi; printf '\\0'
`

/** Run the script's data functions once; stderr passes through so the user sees their own messages. */
export function runConfScript (path: string, command: readonly string[], env: Readonly<Record<string, string>>): ConfOutput {
  const r = childProcess().spawnSync('bash', ['--norc', '--noprofile', '-c', RUNNER, path, ...command], {
    env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20
  })
  if (r.error !== undefined) throw new EnrootError('UNSUPPORTED', 'Command not found: bash', { cause: r.error })
  const parts = r.stdout.split('\0')
  if (r.status !== 0 || parts.length < 5) {
    throw new EnrootError('CONFIG', `${path} exited with return code ${String(r.status ?? 1)}`)
  }
  const [environ = '', mounts = '', rc = '', hooks = ''] = parts
  return {
    environ,
    mounts,
    ...(rc.startsWith('y') ? { rc: rc.slice(1) } : {}),
    hooks: hooks === 'y'
  }
}

/** hooks() as a hook: the script is sourced again (with the command as "$@") and the function called. */
export function confHook (path: string, command: readonly string[]): HookSpec {
  return { path, argv: ['bash', '--norc', '--noprofile', '-c', 'set -euo pipefail; source "$0"; hooks', path, ...command] }
}
