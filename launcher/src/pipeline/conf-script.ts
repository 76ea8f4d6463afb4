// The config script of `start --conf FILE` and `batch CONFIG` (spec §5.5): `#ENROOT_*` directives, and the
// functions environ(), mounts(), rc() and hooks(). The first three are run here, in one bash, and their
// output becomes data; hooks() becomes a HookSpec that the engine runs like an executable hook.
import { statSync, realpathSync } from 'node:fs'
import type { SpawnSyncOptionsWithStringEncoding, SpawnSyncReturns } from 'node:child_process'
import { childProcess } from '../util/builtins.js'
import type { HookSpec } from '../runtime/plan-types.js'
import { EnrootError, invalidArgument, noSuchFile } from '../util/errors.js'
import { log } from '../util/log.js'

// Nothing the script starts may outlive us: a SIGKILLed start (or a SIGTERMed or SIGINTed one: no handler
// is installed yet, so Node dies of them) would leave it running, say an environ() that sleeps or reads
// a hung NFS mount. spawnSync cannot set PR_SET_PDEATHSIG in its child, so util-linux setpriv(1) sets it
// and execs bash; the setting survives that exec. It fires when the thread that forked exits: spawnSync
// forks from the main thread, whose end is the process's. It is not inherited across fork, so the script
// runs in a subshell of that bash, in a session of its own (detached), and the signal (TERM, trapped)
// makes the waiting bash kill the whole process group. setpriv is missing on some systems and older than
// util-linux 2.33 (RHEL 7) it has no --pdeathsig: bash then runs directly and, as before, the script can
// outlive a killed start.
const PDEATHSIG = ['--pdeathsig', 'TERM', '--']
/** Whether setpriv --pdeathsig works; learnt from the first `bash -n` (or a probe), once per process. */
let pdeathsig: boolean | undefined

// spawnSync honours `detached` (setsid in the child) as spawn does; @types/node leaves it out.
type BashOptions = SpawnSyncOptionsWithStringEncoding & { detached?: boolean }

function bashSync (args: string[], opts: BashOptions): SpawnSyncReturns<string> {
  const cp = childProcess()
  if (pdeathsig !== false) {
    const r = cp.spawnSync('setpriv', [...PDEATHSIG, 'bash', ...args], opts)
    // setpriv not found: nothing ran, so bash can run instead
    if ((r.error as NodeJS.ErrnoException | undefined)?.code !== 'ENOENT') return r
    withoutPdeathsig()
  }
  return cp.spawnSync('bash', args, opts)
}

function withoutPdeathsig (): void {
  pdeathsig = false
  log.debug('setpriv --pdeathsig is not available: the conf script\'s bash may outlive a killed start')
}

/**
 * Learn from a run whose stderr was captured whether setpriv accepted --pdeathsig: its own messages (an
 * unknown option, bash not found) start with "setpriv:", bash's with the script's absolute path.
 * Returns false when the run must be repeated without setpriv.
 */
function learnPdeathsig (r: SpawnSyncReturns<string>): boolean {
  if (pdeathsig !== undefined) return true
  if (r.status !== 0 && r.stderr.startsWith('setpriv:')) { withoutPdeathsig(); return false }
  pdeathsig = true
  return true
}

/** The file must exist (after realpath) and pass `bash -n`; syntax errors are shown as warnings first. */
export function checkConfScript (file: string): string {
  let path: string
  try {
    path = realpathSync(file)
    if (!statSync(path).isFile()) throw new Error('not a file')
  } catch {
    throw noSuchFile(file)
  }
  // `bash -n` only parses, so it can run twice: its stderr (captured) tells a failing setpriv from bash.
  let r = bashSync(['-n', path], { encoding: 'utf8' })
  if (!learnPdeathsig(r)) r = bashSync(['-n', path], { encoding: 'utf8' })
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
// The first line closes setpriv's window: a parent that died before the parent-death signal was set has
// left bash to another parent, and nobody reads the output any more. The script runs in a subshell that
// this bash waits for: `wait`, unlike a foreground command, lets the trap run as soon as TERM arrives.
const runner = (parent: number): string => `[ "$PPID" = ${parent} ] || exit 1
trap 'kill -KILL 0' TERM
(
set -euo pipefail
source "$0"
if declare -F environ >/dev/null; then environ; fi; printf '\\0'
if declare -F mounts >/dev/null; then mounts; fi; printf '\\0'
if declare -F rc >/dev/null; then printf 'y'; declare -f rc | sed '1,2d;$d'; fi; printf '\\0'
if declare -F hooks >/dev/null; then printf 'y'; fi; printf '\\0'
) &
wait $!
`

/** Run the script's data functions once; stderr passes through so the user sees their own messages. */
export function runConfScript (path: string, command: readonly string[], env: Readonly<Record<string, string>>): ConfOutput {
  // Normally checkConfScript has learnt whether setpriv works; otherwise a harmless probe does.
  if (pdeathsig === undefined) learnPdeathsig(bashSync(['-c', ':'], { encoding: 'utf8' }))
  const r = bashSync(['--norc', '--noprofile', '-c', runner(process.pid), path, ...command], {
    env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20, detached: true
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
