// Making a finished file visible, atomically and without ever replacing what is there.
//
// Into the cache: a verified temporary file in $CACHE/tmp is link()ed to its final name (atomic, fails
// with EEXIST instead of replacing, unlike rename), then the temporary name is removed. A reader can
// therefore only ever see a missing entry or a complete one, and a published entry is never rewritten.
//
// To the user: their output is a hard link to the entry when the cache is private to them (instant, which
// the 0.2 s warm-import goal needs: copying 200 MB costs ~0.25 s here), else a copy (a reflink where the
// filesystem can, copy_file_range otherwise) written next to the destination and linked into place.
// Why not always link: in a shared cache the entry is not ours to hand out (the user could not be given a
// file they can chmod and rewrite under everyone's feet; and fs.protected_hardlinks forbids it anyway).
import { promises as fsp, constants, unlinkSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { fileExists, fromSystemError } from '../util/errors.js'
import { onInterrupt } from './interrupt.js'
import { newNonce } from './lock.js'

/** Errors that mean "this filesystem or policy does not do hard links here": fall back, do not fail. */
const NO_LINK = new Set(['EXDEV', 'EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EMLINK', 'ENOSYS'])

/**
 * Publish `tmp` (complete and verified) as `final` with `mode`. Returns false when an entry was already
 * there (someone else published first; theirs is kept and ours discarded). `tmp` is gone afterwards.
 */
export async function publishEntry (tmp: string, final: string, mode: number): Promise<boolean> {
  try {
    await fsp.chmod(tmp, mode)
    try {
      await fsp.link(tmp, final)
      return true
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? ''
      if (code === 'EEXIST') return false
      if (!NO_LINK.has(code)) throw err
      // A filesystem without hard links: rename is still atomic; it may replace an identical entry.
      await fsp.rename(tmp, final)
      return true
    }
  } finally {
    await fsp.unlink(tmp).catch(() => {})
  }
}

export type OutputMethod = 'link' | 'copy'

/**
 * Give the user `dest` with the content of the cache entry `src`. `dest` must not exist:
 * "File already exists: <dest>" otherwise, also when it appears while we copy (never replaced).
 */
export async function publishOutput (src: string, dest: string, allowLink: boolean): Promise<OutputMethod> {
  if (allowLink) {
    try {
      await fsp.link(src, dest)
      return 'link'
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? ''
      if (code === 'EEXIST') throw fileExists(dest)
      if (!NO_LINK.has(code)) throw fromSystemError(err, dest)
    }
  }
  const tmp = join(dirname(dest), `.${basename(dest)}.${newNonce()}.tmp`)
  const forget = onInterrupt(() => { try { unlinkSync(tmp) } catch {} })
  try {
    await fsp.copyFile(src, tmp, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE)
    // The copy is the user's own file: normal permissions, not the entry's read-only ones.
    await fsp.chmod(tmp, 0o666 & ~process.umask())
    try {
      await fsp.link(tmp, dest)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? ''
      if (code === 'EEXIST') throw fileExists(dest)
      if (!NO_LINK.has(code)) throw err
      if (await fsp.access(dest).then(() => true, () => false)) throw fileExists(dest)
      await fsp.rename(tmp, dest)
    }
    return 'copy'
  } catch (err) {
    throw fromSystemError(err, dest)
  } finally {
    await fsp.unlink(tmp).catch(() => {})
    forget()
  }
}
