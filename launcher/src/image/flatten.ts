// Merge image layers into one tar stream with OCI whiteout semantics, without extracting anything.
//
// Layers are read top-most first, so the first entry seen for a path is the one that wins. An entry
// of a lower layer is emitted only if no upper layer provided that path, no upper whiteout hides it
// or an ancestor, no upper opaque directory hides its parent's lower contents, and no ancestor was
// provided as a non-directory. The import's own file operations never follow a symlink from the image:
// nothing is written except the output stream and a spool of this layer's shadowed files.
//
// Decisions: a `..` component, a NUL byte or a hard link to something that is not an earlier entry of
// the same layer fails the import (EnrootError 'IMAGE'); a leading '/' is stripped, as tar and Docker
// do. Symlinks are data: never resolved. So an entry below a non-directory of an upper or the same
// layer (`etc -> /` with `etc/passwd`) is dropped, as overlayfs shows nothing under a non-directory;
// and a lower `etc -> /` under an upper `etc/passwd` loses to the upper (possibly implicit) directory,
// as an upper directory hides a lower non-directory in overlayfs. Directory metadata comes from the
// top-most layer with an explicit entry; parents that no layer names are created by tar2sqfs (0755,
// root). tar2sqfs accepts a directory entry after its children (checked), so nothing is reordered
// or held back. Device nodes are dropped (enroot drops `dev/*`; an
// unprivileged container cannot use other device nodes); fifos are kept. Everything is owned by root
// (enroot's -all-root). Xattrs: user.* and security.capability are kept; trusted.* (overlayfs
// internals), other security.* (the build host's SELinux/IMA labels) and system.* (squashfs cannot
// store them) are dropped. Within one layer a duplicate path keeps its first entry.
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { TarReader, TarFormatError, displayName, type TarEntry } from './tar-reader.js'
import type { TarSink } from './tar-writer.js'
import { openLayer, type OpenedLayer } from './decompress.js'
import type { ExtraFile, LayerFile } from './types.js'
import { EnrootError, fromSystemError } from '../util/errors.js'
import { log } from '../util/log.js'

/**
 * A layer, or the promise of one still downloading: layers are read top-most first, so an import can
 * start converting the top-most layers while the lower ones are still on their way.
 */
export type LayerSource = LayerFile | Promise<LayerFile>

export interface FlattenOptions {
  /** bottom-most first (manifest order) */
  layers: readonly LayerSource[]
  /** the config layer on top of the image (/etc/rc …): shadows image files at the same paths */
  extraFiles: readonly ExtraFile[]
  sink: TarSink
  /** shadowed files of the current layer are spooled here while it is read (hard links may need them) */
  tmpdir: string
  /** SOURCE_DATE_EPOCH: every entry gets this mtime (enroot's -all-time) */
  fixedTime?: number
  /** compressed bytes read so far, for progress */
  onRead?: (bytes: number) => void
  /** stops the wait for a layer still downloading (the caller saw another layer's download fail) */
  signal?: AbortSignal
}

export interface FlattenStats { entries: number, droppedDevices: number, spooledFiles: number }

/** Where a hard link of the current layer can get its content. */
interface LinkSource { entry: TarEntry, emittedAs?: string, spool?: string }

/** What one layer accumulates while it is read. */
interface LayerState {
  digest: string
  /** this layer's non-directories so far, for its hard links */
  files: Map<string, LinkSource>
  /** dropped paths (devices, dev/*), so that hard links to them are dropped too */
  dropped: Set<string>
  /** its whiteouts and opaque markers: they hide only the layers below, so applied at its end */
  whiteouts: string[]
  opaques: string[]
  spoolDir?: string
}

type Seen = 'dir' | 'implicit' | 'other'
const KEEP_XATTR = (key: string): boolean => key.startsWith('user.') || key === 'security.capability'

export async function flattenLayers (o: FlattenOptions): Promise<FlattenStats> {
  try {
    return await new LayerMerge(o).run()
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOSPC') throw fromSystemError(err, o.tmpdir)
    throw err
  }
}

class LayerMerge {
  private readonly seen = new Map<string, Seen>()
  private readonly whiteouts = new Set<string>()
  private readonly opaques = new Set<string>()
  private rootOpaque = false
  private readonly stats: FlattenStats = { entries: 0, droppedDevices: 0, spooledFiles: 0 }
  private readonly now = Math.floor(Date.now() / 1000)

  constructor (private readonly o: FlattenOptions) {}

  async run (): Promise<FlattenStats> {
    // The config layer (enroot's layer 0) comes first: it is the top-most.
    for (const f of this.o.extraFiles) {
      if (f.kind === 'directory') continue
      const path = normaliseExtra(f.path)
      if (!this.claim(path, false)) continue
      const content = Buffer.from(f.content)
      await this.emit(fileEntry(path, 'file', f.mode, this.now, content.length), path, content)
    }
    for (const layer of [...this.o.layers].reverse()) await this.layer(layer)
    // Directories of the config layer (WorkingDir): only where the image has nothing at that path.
    for (const f of this.o.extraFiles) {
      if (f.kind !== 'directory') continue
      const path = normaliseExtra(f.path)
      if (path === '' || this.seen.has(path) || this.underNonDir(path)) continue
      this.claim(path, true)
      await this.emit(fileEntry(path, 'directory', f.mode, this.now, 0), path)
    }
    if (this.stats.droppedDevices > 0) log.debug(`dropped ${this.stats.droppedDevices} device nodes outside /dev`)
    return this.stats
  }

  private async layer (source: LayerSource): Promise<void> {
    const layer = await arrival(source, this.o.signal)
    const st: LayerState = { digest: layer.digest, files: new Map(), dropped: new Set(), whiteouts: [], opaques: [] }
    let opened: OpenedLayer | undefined
    try {
      opened = await openLayer(layer.path, layer.mediaType, layer.digest, this.o.onRead)
      const reader = new TarReader(opened.chunks)
      for (let e = await reader.next(); e !== null; e = await reader.next()) await this.entry(st, reader, e)
    } catch (err) {
      opened?.abort()
      if (err instanceof TarFormatError) throw new EnrootError('IMAGE', `Invalid layer ${layer.digest}: ${err.message}`, { cause: err })
      throw err
    } finally {
      if (st.spoolDir !== undefined) await rm(st.spoolDir, { recursive: true, force: true })
    }
    for (const p of st.whiteouts) this.whiteouts.add(p)
    for (const p of st.opaques) { if (p === '') this.rootOpaque = true; else this.opaques.add(p) }
  }

  private async entry (st: LayerState, reader: TarReader, e: TarEntry): Promise<void> {
    const path = normalise(e.name)
    if (typeof path !== 'string') throw invalid(st, e.name, path.reason)
    if (path === '') return // the root: tar2sqfs makes it 0755 root-owned
    if (path.startsWith('dev/')) { st.dropped.add(path); return } // enroot: --exclude='dev/*'
    const slash = path.lastIndexOf('/')
    const base = path.slice(slash + 1)
    if (base.startsWith('.wh.')) {
      const dir = slash === -1 ? '' : path.slice(0, slash)
      if (base === '.wh..wh..opq') st.opaques.push(dir)
      else if (!base.startsWith('.wh..wh.')) st.whiteouts.push(dir === '' ? base.slice(4) : `${dir}/${base.slice(4)}`)
      // other .wh..wh.* names are AUFS bookkeeping (e.g. .wh..wh.plnk): never part of the image
      return
    }
    if (e.type === 'char' || e.type === 'block') { st.dropped.add(path); this.stats.droppedDevices++; return }
    if (e.linkname.includes('\0')) throw invalid(st, e.name, 'NUL byte in link target')
    if (e.type === 'hardlink') { await this.hardLink(st, e, path); return }

    const isDir = e.type === 'directory'
    if (!this.hidden(path) && this.claim(path, isDir)) {
      await this.emit(e, path, e.size > 0 ? reader.body() : undefined)
      if (!isDir) st.files.set(path, { entry: e, emittedAs: path })
    } else if (!isDir) {
      // Shadowed: a later hard link of this layer may still need the content.
      const src: LinkSource = { entry: e }
      if (e.size > 0) {
        st.spoolDir ??= await mkdtemp(join(this.o.tmpdir, 'flatten-'))
        src.spool = join(st.spoolDir, String(this.stats.spooledFiles++))
        await pipeline(reader.body(), createWriteStream(src.spool))
      }
      st.files.set(path, src)
    }
  }

  private async hardLink (st: LayerState, e: TarEntry, path: string): Promise<void> {
    const target = normalise(e.linkname)
    if (typeof target !== 'string') throw invalid(st, e.name, `hard link target ${displayName(e.linkname)}: ${target.reason}`)
    if (st.dropped.has(target) || target.startsWith('dev/')) { st.dropped.add(path); return }
    const src = st.files.get(target)
    if (src === undefined) throw invalid(st, e.name, `hard link target ${displayName(target)} is not an earlier file of this layer`)
    st.files.set(path, src)
    if (this.hidden(path) || !this.claim(path, false)) return
    if (src.emittedAs !== undefined) {
      await this.emit({ ...src.entry, type: 'hardlink', size: 0, linkname: src.emittedAs, xattrs: new Map() }, path)
    } else {
      // The target was shadowed by an upper layer: this link carries the layer's original content,
      // and later links to the same file point at it.
      await this.emit(src.entry, path, src.spool !== undefined ? createReadStream(src.spool) : undefined)
      src.emittedAs = path
    }
  }

  /** Is this lower-layer path hidden by what the upper layers provided? */
  private hidden (path: string): boolean {
    if (this.rootOpaque) return true
    for (let i = path.indexOf('/'); i !== -1; i = path.indexOf('/', i + 1)) {
      const anc = path.slice(0, i)
      if (this.whiteouts.has(anc) || this.opaques.has(anc) || this.seen.get(anc) === 'other') return true
    }
    return this.whiteouts.has(path)
  }

  /** First come, first served; a lower explicit directory may only fill in an implicit one. */
  private claim (path: string, isDir: boolean): boolean {
    const s = this.seen.get(path)
    if (s === undefined) { this.seen.set(path, isDir ? 'dir' : 'other'); this.markParents(path); return true }
    if (s === 'implicit' && isDir) { this.seen.set(path, 'dir'); return true }
    return false
  }

  /** Parents that no entry named yet become implicit directories (a lower layer may still fill them in). */
  private markParents (path: string): void {
    for (let i = path.lastIndexOf('/'); i > 0; i = path.lastIndexOf('/', i - 1)) {
      const anc = path.slice(0, i)
      if (this.seen.has(anc)) break // its own ancestors were marked when it was
      this.seen.set(anc, 'implicit')
    }
  }

  private underNonDir (path: string): boolean {
    for (let i = path.indexOf('/'); i !== -1; i = path.indexOf('/', i + 1)) {
      if (this.seen.get(path.slice(0, i)) === 'other') return true
    }
    return false
  }

  private async emit (e: TarEntry, path: string, body?: Buffer | AsyncIterable<Buffer>): Promise<void> {
    const xattrs = new Map([...e.xattrs].filter(([k]) => KEEP_XATTR(k)))
    await this.o.sink.entry({
      ...e, name: e.type === 'directory' ? `${path}/` : path, mode: e.mode & 0o7777, uid: 0, gid: 0,
      mtime: this.o.fixedTime ?? e.mtime, devmajor: 0, devminor: 0, xattrs
    }, body)
    this.stats.entries++
  }
}

/** The layer, or the abort reason as soon as the signal fires (the layer may never come). */
async function arrival (source: LayerSource, signal?: AbortSignal): Promise<LayerFile> {
  signal?.throwIfAborted()
  if (signal === undefined || !(source instanceof Promise)) return await source
  return await new Promise<LayerFile>((resolve, reject) => {
    const onAbort = (): void => { reject(signal.reason) }
    signal.addEventListener('abort', onAbort, { once: true })
    const done = (): void => { signal.removeEventListener('abort', onAbort) }
    source.then((l) => { done(); resolve(l) }, (err: unknown) => { done(); reject(err) })
  })
}

const invalid = (st: LayerState, name: string, reason: string): EnrootError =>
  new EnrootError('IMAGE', `Invalid layer entry in ${st.digest}: ${displayName(name)} (${reason})`)

/** Strip '/', '.' and empty components; refuse '..' and NUL. Returns the relative path ('' = root). */
export function normalise (name: string): string | { reason: string } {
  if (name.includes('\0')) return { reason: 'NUL byte in name' }
  const parts = name.split('/').filter(p => p !== '' && p !== '.')
  if (parts.includes('..')) return { reason: "'..' path component" }
  return parts.join('/')
}

function normaliseExtra (p: string): string {
  const n = normalise(p)
  if (typeof n !== 'string') throw new EnrootError('INTERNAL', `invalid config layer path ${p}: ${n.reason}`)
  return n
}

function fileEntry (name: string, type: 'file' | 'directory', mode: number, mtime: number, size: number): TarEntry {
  return { name, type, mode, uid: 0, gid: 0, size, mtime, linkname: '', devmajor: 0, devminor: 0, xattrs: new Map() }
}

/** Total compressed size of the layers, the denominator of progress. */
export async function layersSize (layers: readonly LayerFile[]): Promise<number> {
  let total = 0
  for (const l of layers) total += (await stat(l.path)).size
  return total
}
