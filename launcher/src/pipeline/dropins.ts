// Drop-in files (spec §5.2-§5.4, §9): `NN-name.ext` files, system directory ($ENROOT_SYSCONF_PATH) before
// user directory ($ENROOT_CONFIG_PATH), each in lexical order. Only executable hooks run. A system hook that
// is the shipped marker file (`# enroot-builtin: NAME`) is run by the runtime's built-in implementation;
// an admin disables it by removing it or clearing its x bit, or overrides it by replacing the file.
import { readdirSync, statSync, accessSync, openSync, readSync, closeSync, constants } from 'node:fs'
import { join } from 'node:path'
import type { HookSpec } from '../runtime/plan-types.js'
import { isBuiltinHook } from './builtin-hooks/index.js'

export interface DropIns {
  environ: string[]
  mounts: string[]
  hooks: HookSpec[]
}

/** Regular files (symlinks followed) with the extension, in byte order like the C-locale glob. */
export function listDir (dir: string, ext: string): string[] {
  let names: string[]
  try { names = readdirSync(dir) } catch { return [] }
  return names.filter(n => n.endsWith(ext)).sort((a, b) => a < b ? -1 : a > b ? 1 : 0)
    .map(n => join(dir, n))
    .filter(p => { try { return statSync(p).isFile() } catch { return false } })
}

const isExecutable = (p: string): boolean => { try { accessSync(p, constants.X_OK); return true } catch { return false } }

const MARKER = /^# enroot-builtin: ([a-z0-9-]+)$/m

/** The built-in name when the file's first 256 bytes carry the marker line. */
export function builtinMarker (path: string): string | undefined {
  let fd: number | undefined
  try {
    fd = openSync(path, 'r')
    const buf = Buffer.alloc(256)
    const n = readSync(fd, buf, 0, buf.length, 0)
    const name = MARKER.exec(buf.subarray(0, n).toString('utf8'))?.[1]
    return name !== undefined && isBuiltinHook(name) ? name : undefined
  } catch {
    return undefined
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
}

export function hookSpecs (dir: string, allowBuiltin: boolean): HookSpec[] {
  return listDir(dir, '.sh').filter(isExecutable).map(path => {
    const builtin = allowBuiltin ? builtinMarker(path) : undefined
    return builtin === undefined ? { path, argv: [path] } : { path, argv: [path], builtin }
  })
}

export function listDropIns (sysconfPath: string, configPath: string): DropIns {
  const both = (sub: string, ext: string): string[] => [...listDir(join(sysconfPath, sub), ext), ...listDir(join(configPath, sub), ext)]
  return {
    environ: both('environ.d', '.env'),
    mounts: both('mounts.d', '.fstab'),
    hooks: [...hookSpecs(join(sysconfPath, 'hooks.d'), true), ...hookSpecs(join(configPath, 'hooks.d'), false)]
  }
}
