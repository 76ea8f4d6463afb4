// Directory creation for paths that come from configuration (ENROOT_*_PATH, TMPDIR).
// Node's mkdir({ recursive: true }) never returns when the kernel answers ENOENT for a directory whose
// parent exists (any path under /proc, e.g. ENROOT_RUNTIME_PATH=/proc/x): it retries the parent forever.
// This walks the components itself and turns failures into one-line errors naming the setting's path.
import { mkdirSync, realpathSync, statSync } from 'node:fs'
import { fsPromises } from './builtins.js'
import { resolve, sep } from 'node:path'
import { EnrootError, noSuchFile } from './errors.js'

function prefixes (path: string): string[] {
  const parts = resolve(path).split(sep).filter(Boolean)
  return parts.map((_, i) => sep + parts.slice(0, i + 1).join(sep))
}

function failure (path: string, err: unknown): EnrootError {
  const e = err as NodeJS.ErrnoException
  const why = e.code === 'EACCES' || e.code === 'EPERM' ? 'Permission denied'
    : e.code === 'ENOTDIR' ? 'Not a directory'
      : e.code === 'ENOENT' ? 'No such file or directory'
        : e.code === 'EROFS' ? 'Read-only file system'
          : (e.message ?? String(err))
  return new EnrootError('SYSCALL', `Could not create directory: ${path}: ${why}`, {
    cause: err,
    hint: 'Point the ENROOT_*_PATH setting (or TMPDIR/XDG_RUNTIME_DIR) that leads here at a directory you can write.'
  })
}

/** mkdir -p with the given mode for the directories it creates. */
export function makeDirs (path: string, mode = 0o755): void {
  for (const p of prefixes(path)) {
    try { mkdirSync(p, { mode }) } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw failure(p, err)
      let isDir = false
      try { isDir = statSync(p).isDirectory() } catch {}
      if (!isDir) throw failure(p, Object.assign(new Error('not a directory'), { code: 'ENOTDIR' }))
    }
  }
}

/** The same, without blocking the event loop. */
export async function makeDirsAsync (path: string, mode = 0o755): Promise<void> {
  for (const p of prefixes(path)) {
    try { await fsPromises().mkdir(p, { mode }) } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw failure(p, err)
      const isDir = await fsPromises().stat(p).then(s => s.isDirectory(), () => false)
      if (!isDir) throw failure(p, Object.assign(new Error('not a directory'), { code: 'ENOTDIR' }))
    }
  }
}

/** A file argument (an image): its real path, or `No such file or directory` when it is not a file. */
export function existingFile (path: string): string {
  try {
    const p = realpathSync(path)
    if (statSync(p).isFile()) return p
  } catch {}
  throw noSuchFile(path)
}
