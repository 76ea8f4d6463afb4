// Test-side layer builder: arbitrary tar entries, hostile ones included (names with '..', absolute
// names, links out of the tree), GNU long-name records, and gzip/zstd/plain blobs with their digest.
import { createHash } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { encodeHeader, paddingFor, END_OF_ARCHIVE } from '../../launcher/src/image/tar-writer.js'
import type { EntryType, TarEntry } from '../../launcher/src/image/tar-reader.js'
import type { LayerFile } from '../../launcher/src/image/types.js'

export interface TestEntry {
  name: string
  /** the name's exact bytes, for names that are not UTF-8 (overrides name) */
  rawName?: Buffer
  type?: EntryType
  data?: string | Buffer
  mode?: number
  linkname?: string
  mtime?: number
  uid?: number
  xattrs?: Record<string, string | Buffer>
  devmajor?: number
  devminor?: number
  /** write the name (and link name) as GNU 'L'/'K' records instead of PAX */
  gnuLong?: boolean
}

const dir = (name: string): TestEntry => ({ name, type: 'directory', mode: 0o755 })
const file = (name: string, data: string | Buffer = '', mode = 0o644): TestEntry => ({ name, data, mode })
export const t = { dir, file }

function toEntry (e: TestEntry): { entry: TarEntry, data: Buffer } {
  const data = typeof e.data === 'string' ? Buffer.from(e.data) : (e.data ?? Buffer.alloc(0))
  const type = e.type ?? 'file'
  return {
    data,
    entry: {
      name: (e.rawName ?? Buffer.from(e.name)).toString('latin1'),
      type,
      mode: e.mode ?? (type === 'directory' ? 0o755 : 0o644),
      uid: e.uid ?? 1000,
      gid: e.uid ?? 1000,
      size: type === 'file' ? data.length : 0,
      mtime: e.mtime ?? 1700000000,
      linkname: Buffer.from(e.linkname ?? '').toString('latin1'),
      devmajor: e.devmajor ?? 0,
      devminor: e.devminor ?? 0,
      xattrs: new Map(Object.entries(e.xattrs ?? {}).map(([k, v]) => [k, Buffer.from(v)]))
    }
  }
}

function gnuRecord (flag: 'L' | 'K', value: string): Buffer {
  const body = Buffer.concat([Buffer.from(value), Buffer.alloc(1)])
  const header = encodeHeader({ name: '././@LongLink', type: 'file', mode: 0, uid: 0, gid: 0, size: body.length, mtime: 0, linkname: '', devmajor: 0, devminor: 0, xattrs: new Map() })
  header.write(flag, 156, 1, 'latin1')
  // fix the checksum after changing the type flag
  header.fill(0x20, 148, 156)
  let sum = 0
  for (const b of header) sum += b
  header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1')
  return Buffer.concat([header, body, paddingFor(body.length)])
}

/** An uncompressed tar of the entries, in order. */
export function tarBuffer (entries: readonly TestEntry[]): Buffer {
  const parts: Buffer[] = []
  for (const e of entries) {
    const { entry, data } = toEntry(e)
    if (e.gnuLong === true) {
      parts.push(gnuRecord('L', e.name))
      if (e.linkname !== undefined) parts.push(gnuRecord('K', e.linkname))
      entry.name = entry.name.slice(0, 99)
      entry.linkname = entry.linkname.slice(0, 99)
    }
    parts.push(encodeHeader(entry), data, paddingFor(data.length))
  }
  parts.push(END_OF_ARCHIVE)
  return Buffer.concat(parts)
}

export type Compression = 'gzip' | 'zstd' | 'none'

export function compress (tar: Buffer, how: Compression): Buffer {
  if (how === 'gzip') return gzipSync(tar, { level: 1 })
  if (how === 'zstd') return execFileSync('zstd', ['-q', '-c', '-1'], { input: tar, maxBuffer: 1 << 30 })
  return tar
}

const MEDIA: Record<Compression, string> = {
  gzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  zstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  none: 'application/vnd.oci.image.layer.v1.tar'
}

/** Writes a layer blob into dir and describes it (the media type can be made to lie). */
export function writeLayer (dirPath: string, entries: readonly TestEntry[], how: Compression = 'gzip', mediaType = MEDIA[how]): LayerFile {
  const blob = compress(tarBuffer(entries), how)
  const hex = createHash('sha256').update(blob).digest('hex')
  const path = join(dirPath, hex)
  writeFileSync(path, blob, { mode: 0o644 })
  return { path, mediaType, digest: `sha256:${hex}` }
}
