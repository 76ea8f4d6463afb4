// Logs go to stderr as [INFO]/[WARN]/[ERROR] (enroot's prefixes), coloured only on a TTY.
// stdout is reserved for command output so that it can be piped.

// Asked on the first message, not at load: process.stderr is created on first use, with the stream and
// tty modules behind it, and most starts never log anything.
let tty: boolean | undefined
const isTTY = (): boolean => (tty ??= process.stderr.isTTY === true)
const paint = (code: string, text: string): string => isTTY() && process.env.NO_COLOR === undefined ? `\x1b[${code}m${text}\x1b[0m` : text

let debugEnabled = process.env.ENROOT_DEBUG !== undefined && process.env.ENROOT_DEBUG !== ''

export const log = {
  info (msg: string): void { process.stderr.write(`${paint('1;34', '[INFO]')} ${msg}\n`) },
  warn (msg: string): void { process.stderr.write(`${paint('1;33', '[WARN]')} ${msg}\n`) },
  error (msg: string): void { process.stderr.write(`${paint('1;31', '[ERROR]')} ${msg}\n`) },
  /** ENROOT_DEBUG: every subprocess argv and native operation. */
  debug (msg: string): void { if (debugEnabled) process.stderr.write(`${paint('2', '[DEBUG]')} ${msg}\n`) },
  setDebug (on: boolean): void { debugEnabled = on },
  get isDebug (): boolean { return debugEnabled },
  get isTTY (): boolean { return isTTY() }
}
