// Small helpers shared by the built-in hooks.
import { readFileSync } from 'node:fs'
import type { MountOp } from '../../runtime/plan-types.js'
import { parseFstab } from '../fstab.js'

/** Built-in hooks speak fstab like the shell hooks did; this keeps their output readable and testable. */
export function fstabOps (lines: readonly string[], origin: string): MountOp[] {
  return parseFstab(lines.join('\n'), origin).map(e => e.op)
}

export function readText (path: string): string | undefined {
  try { return readFileSync(path, 'utf8') } catch { return undefined }
}

/** fstab fields cannot hold whitespace; getmntent's octal escapes carry it. */
export const escapeField = (s: string): string => s.replace(/[\\ \t\n]/g, c => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`)
