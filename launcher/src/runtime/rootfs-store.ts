// The container store: directories under $ENROOT_DATA_PATH, plus the file-level helpers the commands share
// (squashfs detection, enroot's rmall and fixperms).
import { statSync, lstatSync, readdirSync, rmSync, chmodSync, openSync, readSync, closeSync, type Stats } from 'node:fs'
import { join } from 'node:path'
import type { Config } from '../config/load.js'
import { noSuchFile } from '../util/errors.js'
import { validateName } from './names.js'

export const dataPath = (cfg: Config): string => cfg.get('ENROOT_DATA_PATH') ?? ''

/** `$ENROOT_DATA_PATH/<name>` for a valid name. */
export const containerPath = (cfg: Config, name: string): string => join(dataPath(cfg), validateName(name))

/** The existing rootfs directory of a container, or `No such file or directory: <path>`. */
export function requireContainer (cfg: Config, name: string): string {
  const path = containerPath(cfg, name)
  if (!isDir(path)) throw noSuchFile(path)
  return path
}

export function isDir (p: string): boolean {
  try { return statSync(p).isDirectory() } catch { return false }
}

/** A squashfs superblock starts with "hsqs"; reading 4 bytes is far cheaper than spawning `unsquashfs -s`. */
export function isSquashfs (p: string): boolean {
  let fd: number | undefined
  try {
    if (!statSync(p).isFile()) return false
    fd = openSync(p, 'r')
    const b = Buffer.alloc(4)
    return readSync(fd, b, 0, 4, 0) === 4 && b.toString('latin1') === 'hsqs'
  } catch {
    return false
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
}

/**
 * Visit every entry below root (symlinks are not followed), parents before their contents; `visit` returns
 * false to skip an entry's contents. Entries that vanish or cannot be read are skipped.
 */
function walk (root: string, visit: (path: string, rel: string, st: Stats, depth: number) => boolean, rel = '', depth = 1): void {
  let names: string[]
  try { names = readdirSync(root) } catch { return }
  for (const n of names) {
    const p = join(root, n)
    const r = rel === '' ? n : `${rel}/${n}`
    const st = lstatSync(p, { throwIfNoEntry: false })
    if (st === undefined || st.isSymbolicLink()) continue
    if (visit(p, r, st, depth) && st.isDirectory()) walk(p, visit, r, depth + 1)
  }
}

/**
 * enroot's fixperms: `chmod -R u+rX`, and u+w on directories down to depth 15. Distro images carry root-only
 * 0555 directories that the owner could otherwise neither fill nor delete.
 */
export function fixPerms (root: string): void {
  const fix = (p: string, st: Stats, depth: number): boolean => {
    const mode = st.mode & 0o7777
    let m = mode | 0o400
    if (st.isDirectory() || (mode & 0o111) !== 0) m |= 0o100
    if (st.isDirectory() && depth < 15) m |= 0o200
    if (m !== mode) { try { chmodSync(p, m) } catch {} }
    return true
  }
  const st = lstatSync(root, { throwIfNoEntry: false })
  if (st !== undefined) fix(root, st, 0)
  walk(root, (p, _, s, depth) => fix(p, s, depth))
}

/** enroot's rmall: remove; if permissions stop it, `chmod -R +rwX` and try again. */
export function removeTree (path: string): void {
  try {
    rmSync(path, { recursive: true, force: true })
  } catch {
    try { chmodSync(path, 0o700) } catch {}
    walk(path, (p, _, st) => { try { chmodSync(p, (st.mode & 0o7777) | 0o600 | (st.isDirectory() ? 0o100 : 0)) } catch {} return true })
    rmSync(path, { recursive: true, force: true })
  }
}

/**
 * What `export` leaves out: everything under /dev, the x-create placeholders (mode 0000, empty or a
 * directory), /.enroot and /.lock. Paths relative to the rootfs, for mksquashfs -ef.
 */
export function exportExcludes (rootfs: string): string[] {
  const out: string[] = []
  for (const top of ['.enroot', '.lock']) { try { lstatSync(join(rootfs, top)); out.push(top) } catch {} }
  try { for (const n of readdirSync(join(rootfs, 'dev'))) out.push(`dev/${n}`) } catch {}
  walk(rootfs, (_, rel, st) => {
    if (rel === 'dev' || rel === '.enroot' || rel === '.lock') return false
    if ((st.mode & 0o7777) === 0 && (st.isDirectory() || (st.isFile() && st.size === 0))) { out.push(rel); return false }
    return true
  })
  return out
}
