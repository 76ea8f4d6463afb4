// Whether a cache directory may be trusted, decided before anything is read from it (doc/cache.md,
// "Permissions"). Converted images are keyed by what they were made from, not by their own bytes, so
// whoever can write into images/ can make every user of the cache run their content. Hence the rule, the
// one OpenSSH applies to authorized_keys and sudo to its files:
//
//   No directory from / down to the cache's entry directories may be writable by anyone but its owner.
//   The one exception is a sticky directory such as /tmp, and then the next directory on the path must
//   belong to you or to root (anyone may create names in /tmp, but only the owner can remove them).
//
// So a per-user cache (~/.cache/enroot, 0700) and a cluster cache written by a dedicated account
// (/shared/enroot owned by that account, 0755, read by everyone) both pass; a group-writable or
// world-writable cache is refused with the directory to fix.
import { realpathSync, statSync, accessSync, constants, type Stats } from 'node:fs'
import { dirname, join } from 'node:path'
import { EnrootError } from '../util/errors.js'

export interface CacheAccess {
  /** the canonical path of the cache root */
  root: string
  /** we may add entries (else the cache is used read-only and misses are built privately) */
  writable: boolean
  /** someone other than us can read entries: outputs are then copies, never hard links */
  shared: boolean
  /** mode bits the cache root grants (entries and subdirectories take their read bits from it) */
  rootMode: number
  ownerUid: number
}

const WRITE_OTHERS = 0o022
const STICKY = 0o1000

function refuse (dir: string, st: Stats, why: string, fix = `chmod go-w ${dir}`): EnrootError {
  const mode = (st.mode & 0o7777).toString(8).padStart(4, '0')
  return new EnrootError('CACHE', `Refusing to use cache directory: ${dir} (${why}, mode ${mode}, uid ${st.uid})`, {
    hint: `Another user could place content there that you would run. Fix: ${fix}, or set ENROOT_CACHE_PATH to a directory only you (or a dedicated account) can write.`
  })
}

/** Every directory from / to `dir`, outermost first. */
function ancestry (dir: string): string[] {
  const out: string[] = []
  for (let d = dir; ; d = dirname(d)) {
    out.unshift(d)
    if (dirname(d) === d) break
  }
  return out
}

/**
 * Check the chain of directories down to `root` and the entry directories under it that exist.
 * `uid` is whom we run as; root (0) is always trusted, as the kernel trusts it anyway.
 */
export function checkCacheTrust (root: string, uid: number, entryDirs: readonly string[]): CacheAccess {
  const real = realpathSync(root)
  const chain = ancestry(real)
  let parent: Stats | undefined
  let parentPath = ''
  for (const dir of chain) {
    const st = statSync(dir)
    if (parent !== undefined && (parent.mode & WRITE_OTHERS) !== 0) {
      if ((parent.mode & STICKY) === 0) throw refuse(parentPath, parent, 'writable by other users')
      if (st.uid !== uid && st.uid !== 0) throw refuse(dir, st, `inside the shared directory ${parentPath} but owned by another user`, `use a directory of your own (or root's) in ${parentPath}`)
    }
    parent = st
    parentPath = dir
  }
  const top = parent as Stats
  // The cache itself may not be sticky-shared: anyone could create an entry name before the real one.
  if ((top.mode & WRITE_OTHERS) !== 0) throw refuse(real, top, 'writable by other users')
  let writable = true
  for (const rel of ['', ...entryDirs]) {
    const dir = rel === '' ? real : join(real, rel)
    let st: Stats
    try { st = statSync(dir) } catch { continue } // created later with safe modes
    if ((st.mode & WRITE_OTHERS) !== 0) throw refuse(dir, st, 'writable by other users')
    try { accessSync(dir, constants.W_OK | constants.X_OK) } catch { writable = false }
  }
  return {
    root: real,
    writable,
    shared: top.uid !== uid || (top.mode & 0o077) !== 0,
    rootMode: top.mode & 0o777,
    ownerUid: top.uid
  }
}
