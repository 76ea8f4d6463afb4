// One error type with stable codes. Everything throws; only cli.ts turns an error into an exit status.
// Expected failures exit 1 (enroot and pyxis callers test for non-zero); bugs exit 70 with a stack.

export type ErrorCode =
  | 'USAGE'          // bad command line
  | 'INVALID'        // "Invalid argument: X"
  | 'NOT_FOUND'      // "No such file or directory: X"
  | 'EXISTS'         // "File already exists: X"
  | 'CONFIG'         // bad configuration file or value
  | 'REGISTRY'       // registry answered with an error
  | 'AUTH'           // authentication failed
  | 'NETWORK'        // connection refused, timeout, truncated transfer
  | 'DIGEST'         // checksum or size mismatch
  | 'IMAGE'          // malformed or hostile image content
  | 'CACHE'          // cache corruption or lock trouble
  | 'SPACE'          // no space left
  | 'HOOK'           // a hook failed
  | 'SYSCALL'        // a native operation failed
  | 'UNSUPPORTED'    // a feature this host or build lacks
  | 'INTERRUPTED'    // a signal stopped the operation
  | 'INTERNAL'       // a bug

export interface ErrorOptions {
  hint?: string
  cause?: unknown
  exitCode?: number
}

export class EnrootError extends Error {
  readonly code: ErrorCode
  readonly exitCode: number
  readonly hint?: string

  constructor (code: ErrorCode, message: string, opts: ErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause })
    this.name = 'EnrootError'
    this.code = code
    this.exitCode = opts.exitCode ?? (code === 'INTERNAL' ? 70 : 1)
    if (opts.hint !== undefined) this.hint = opts.hint
  }
}

/** Usage errors print the command's usage (enroot prints it to stdout) and exit 1. */
export class UsageError extends EnrootError {
  readonly usage?: string
  constructor (message: string, usage?: string) {
    super('USAGE', message)
    if (usage !== undefined) this.usage = usage
  }
}

/** The container's own status passes through start/exec unchanged: not an error to report. */
export class ExitStatus extends Error {
  readonly status: number
  constructor (status: number) {
    super(`exit status ${status}`)
    this.status = status
  }
}

export const invalidArgument = (what: string, hint?: string): EnrootError =>
  new EnrootError('INVALID', `Invalid argument: ${what}`, hint === undefined ? {} : { hint })

export const noSuchFile = (path: string, hint?: string): EnrootError =>
  new EnrootError('NOT_FOUND', `No such file or directory: ${path}`, hint === undefined ? {} : { hint })

export const fileExists = (path: string, hint?: string): EnrootError =>
  new EnrootError('EXISTS', `File already exists: ${path}`, hint === undefined ? {} : { hint })

/** Node's fs errors carry code/path/syscall; turn the common ones into one-line messages. */
export function fromSystemError (err: unknown, what: string): EnrootError {
  const e = err as NodeJS.ErrnoException
  if (e instanceof EnrootError) return e
  switch (e?.code) {
    case 'ENOENT': return noSuchFile(e.path ?? what)
    case 'EEXIST': return fileExists(e.path ?? what)
    case 'ENOSPC': return new EnrootError('SPACE', `No space left on device: ${what}`, { cause: e, hint: 'Free some space or point ENROOT_TEMP_PATH/ENROOT_CACHE_PATH elsewhere.' })
    case 'EACCES':
    case 'EPERM': return new EnrootError('SYSCALL', `Permission denied: ${e.path ?? what}`, { cause: e })
    default: return new EnrootError('INTERNAL', `${what}: ${e?.message ?? String(err)}`, { cause: e })
  }
}
