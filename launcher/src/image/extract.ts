// A tar stream → a directory tree owned by the invoking user: what `enroot load` does with
// `tar --numeric-owner --mode=u-s,g-s -xpf` inside a root-remapped user namespace, without the namespace.
//
// Confinement. The stream comes from the flattener (no `..`, nothing below a non-directory), but the
// extractor does not rely on that: a hostile entry must never make it write outside `root`.
//  - Every path is normalised; `..` or NUL fails (EnrootError 'IMAGE').
//  - The tree starts empty and only this extractor writes to it, so an in-memory record of what it
//    created is the truth about every ancestor: a path through anything it made as a non-directory
//    (a symlink `etc -> /`, a file) fails instead of being followed. This is the openat(O_NOFOLLOW)
//    walk of bsdtar's "secure" mode without the syscalls per component.
//  - The last component is created exclusively (O_CREAT|O_EXCL|O_NOFOLLOW, mkdir, symlink, link: none
//    of them follows a symlink there), so a duplicate entry fails rather than writing through one.
//  - Hard links may point only at an earlier non-directory of this stream; link(2) does not follow a
//    symlink target.
// Metadata. Owner: the invoking user (we are not root; enroot's remapped root gives the same result).
// setuid/setgid are stripped (enroot: --mode=u-s,g-s), the sticky bit kept. enroot's fixperms
// (u+rX, u+w on directories) is applied as we go, so the owner can always read, start and remove the
// rootfs. Directory modes and mtimes are set at the end, deepest first (tar's --delay-directory-restore):
// a 0555 directory must stay writable while it is filled, and filling it changes its mtime. Device nodes
// are skipped (an unprivileged user cannot make them; the flattener drops them already); xattrs are not
// set (Node has no xattr calls, and the only ones a user may set, user.*, are rare in images).
import { constants, promises as fsp } from 'node:fs'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { TarReader, TarFormatError, displayName, type TarEntry } from './tar-reader.js'
import { normalise } from './flatten.js'
import { EnrootError, fromSystemError } from '../util/errors.js'

export interface ExtractStats { entries: number, bytes: number, skippedDevices: number }

type Made = 'dir' | 'other'

const OPEN_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW

/** enroot's --mode=u-s,g-s and fixperms: no setuid/setgid; the owner may read (and enter/run) everything. */
export function extractedMode (mode: number, isDir: boolean): number {
  let m = mode & 0o1777
  m |= 0o400
  if (isDir || (m & 0o111) !== 0) m |= 0o100
  if (isDir) m |= 0o200
  return m
}

/** Extracts `source` (a tar stream) into `root`, an existing empty directory. */
export async function extractTar (source: AsyncIterable<Buffer>, root: string): Promise<ExtractStats> {
  const x = new Extractor(root)
  const reader = new TarReader(source)
  try {
    for (let e = await reader.next(); e !== null; e = await reader.next()) await x.entry(e, reader)
    await x.finish()
  } catch (err) {
    if (err instanceof TarFormatError) throw new EnrootError('IMAGE', `Invalid image stream: ${err.message}`, { cause: err })
    if (err instanceof EnrootError) throw err
    throw fromSystemError(err, root)
  }
  return x.stats
}

class Extractor {
  readonly stats: ExtractStats = { entries: 0, bytes: 0, skippedDevices: 0 }
  private readonly made = new Map<string, Made>()
  /** directories whose final mode and mtime are applied at the end */
  private readonly dirs = new Map<string, { mode: number, mtime: number }>()

  constructor (private readonly root: string) {}

  async entry (e: TarEntry, reader: TarReader): Promise<void> {
    const path = normalise(e.name)
    if (typeof path !== 'string') throw this.invalid(e.name, path.reason)
    if (path === '') return // the root keeps the mode its creator gave it
    await this.parents(path, e.name)
    const abs = join(this.root, path)
    const mode = extractedMode(e.mode, e.type === 'directory')
    switch (e.type) {
      case 'directory':
        if (this.made.get(path) === 'dir') { this.dirs.set(path, { mode, mtime: e.mtime }); break }
        this.claim(path, 'dir', e.name)
        await fsp.mkdir(abs, { mode: 0o700 })
        this.dirs.set(path, { mode, mtime: e.mtime })
        break
      case 'file': {
        this.claim(path, 'other', e.name)
        const fh = await fsp.open(abs, OPEN_FLAGS, 0o600)
        try {
          if (e.size > 0) for await (const chunk of reader.body()) { await fh.write(chunk); this.stats.bytes += chunk.length }
          await fh.chmod(mode)
          await fh.utimes(e.mtime, e.mtime)
        } finally { await fh.close() }
        break
      }
      case 'symlink':
        this.claim(path, 'other', e.name)
        await fsp.symlink(e.linkname, abs)
        await fsp.lutimes(abs, e.mtime, e.mtime)
        break
      case 'hardlink': {
        const target = normalise(e.linkname)
        if (typeof target !== 'string') throw this.invalid(e.name, `hard link target: ${target.reason}`)
        if (this.made.get(target) !== 'other') throw this.invalid(e.name, `hard link target ${displayName(target)} is not an earlier file`)
        this.claim(path, 'other', e.name)
        await fsp.link(join(this.root, target), abs)
        break
      }
      case 'fifo':
        this.claim(path, 'other', e.name)
        await mkfifo(abs, mode)
        await fsp.utimes(abs, e.mtime, e.mtime)
        break
      case 'char': case 'block':
        this.stats.skippedDevices++
        return
      default: {
        const never: never = e.type
        throw this.invalid(e.name, `unknown entry type ${String(never)}`)
      }
    }
    this.stats.entries++
  }

  /** Every ancestor must be a directory this extractor made; missing ones are made (0755, as tar does). */
  private async parents (path: string, name: string): Promise<void> {
    for (let i = path.indexOf('/'); i !== -1; i = path.indexOf('/', i + 1)) {
      const anc = path.slice(0, i)
      const m = this.made.get(anc)
      if (m === 'dir') continue
      if (m === 'other') throw this.invalid(name, `${displayName(anc)} is not a directory`)
      this.made.set(anc, 'dir')
      await fsp.mkdir(join(this.root, anc), { mode: 0o700 })
      this.dirs.set(anc, { mode: 0o755, mtime: Math.floor(Date.now() / 1000) })
    }
  }

  private claim (path: string, kind: Made, name: string): void {
    if (this.made.has(path)) throw this.invalid(name, 'duplicate entry')
    this.made.set(path, kind)
  }

  async finish (): Promise<void> {
    const deepestFirst = [...this.dirs].sort(([a], [b]) => depth(b) - depth(a))
    for (const [path, d] of deepestFirst) {
      const abs = join(this.root, path)
      await fsp.chmod(abs, d.mode)
      await fsp.utimes(abs, d.mtime, d.mtime)
    }
  }

  private invalid (name: string, reason: string): EnrootError {
    return new EnrootError('IMAGE', `Invalid image entry: ${displayName(name)} (${reason})`)
  }
}

const depth = (p: string): number => p.split('/').length

/** Node has no mkfifo(3); fifos are rare in images, so one process each is fine. */
async function mkfifo (path: string, mode: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const c = spawn('mkfifo', ['-m', (mode & 0o777).toString(8), '--', path], { stdio: ['ignore', 'ignore', 'pipe'] })
    let err = ''
    c.stderr.on('data', (d: Buffer) => { err += d.toString() })
    c.on('error', reject)
    c.on('close', (code) => { code === 0 ? resolve() : reject(new EnrootError('IMAGE', `Could not create fifo ${path}: ${err.trim()}`)) })
  })
}
