// A streaming tar reader: ustar, GNU long names ('L'/'K'), PAX extended headers (path, linkpath, size,
// mtime, SCHILY.xattr.*, LIBARCHIVE.xattr.*); global PAX headers are ignored.
//
// Names are kept as "byte strings" (each byte one latin1 char) so that non-UTF-8 names survive a
// read → write round trip byte for byte; use displayName() for messages. File data is never copied
// byte by byte: body() hands out slices of the decompressor's own chunks.

export type EntryType = 'file' | 'hardlink' | 'symlink' | 'char' | 'block' | 'directory' | 'fifo'

export interface TarEntry {
  name: string
  type: EntryType
  mode: number
  uid: number
  gid: number
  size: number
  mtime: number
  linkname: string
  devmajor: number
  devminor: number
  /** extended attributes (PAX SCHILY.xattr.*), values are raw bytes */
  xattrs: Map<string, Buffer>
}

/** Thrown for malformed archives; the caller adds the layer digest. */
export class TarFormatError extends Error { override name = 'TarFormatError' }

export const displayName = (byteString: string): string => Buffer.from(byteString, 'latin1').toString('utf8')

const BLOCK = 512
const TYPES: Record<string, EntryType> = {
  '0': 'file', '\0': 'file', '7': 'file', '1': 'hardlink', '2': 'symlink', '3': 'char', '4': 'block', '5': 'directory', '6': 'fifo'
}

export class TarReader {
  private readonly it: AsyncIterator<Buffer>
  private chunks: Buffer[] = []
  private buffered = 0
  private eof = false
  /** bytes of the current entry's body not yet consumed, and the padding after it */
  private remaining = 0
  private padding = 0

  constructor (source: AsyncIterable<Buffer>) {
    this.it = source[Symbol.asyncIterator]()
  }

  /** The next entry (after skipping whatever is left of the current body), or null at the end. */
  async next (): Promise<TarEntry | null> {
    await this.skipBody()
    let longName: string | undefined
    let longLink: string | undefined
    let pax: Map<string, Buffer> | undefined
    for (;;) {
      const block = await this.read(BLOCK)
      if (block === null || isZero(block)) { await this.drain(); return null }
      verifyChecksum(block)
      const flag = String.fromCharCode(block[156] as number)
      const size = parseNumber(block, 124, 12)
      if (flag === 'L' || flag === 'K' || flag === 'x' || flag === 'g') {
        const body = await this.readBody(size)
        if (flag === 'L') longName = cString(body)
        else if (flag === 'K') longLink = cString(body)
        else if (flag === 'x') pax = parsePax(body)
        continue
      }
      if (flag === 'S' || pax?.has('GNU.sparse.major') === true || pax?.has('GNU.sparse.size') === true) {
        throw new TarFormatError('sparse files are not supported')
      }
      if (flag === 'V') { await this.readBody(size); continue } // GNU volume label: metadata only
      const entry = parseHeader(block, flag, size)
      if (longName !== undefined) entry.name = longName
      if (longLink !== undefined) entry.linkname = longLink
      if (pax !== undefined) applyPax(entry, pax)
      // Only regular files carry data: like Go's archive/tar (which writes most layers), the size field of
      // header-only types is ignored, so it cannot make us swallow the next header.
      if (entry.type !== 'file') entry.size = 0
      this.remaining = entry.size
      this.padding = padTo(entry.size)
      return entry
    }
  }

  /** The current entry's data as slices of the input chunks; must be consumed before next(). */
  async * body (): AsyncGenerator<Buffer> {
    while (this.remaining > 0) {
      if (this.buffered === 0 && !(await this.pull())) throw new TarFormatError('unexpected end of archive')
      const head = this.chunks[0] as Buffer
      const n = Math.min(head.length, this.remaining)
      this.consumeHead(n)
      this.remaining -= n
      yield n === head.length ? head : head.subarray(0, n)
    }
  }

  async skipBody (): Promise<void> {
    while (this.remaining > 0) {
      if (this.buffered === 0 && !(await this.pull())) throw new TarFormatError('unexpected end of archive')
      const n = Math.min(this.buffered, this.remaining)
      this.discard(n)
      this.remaining -= n
    }
    if (this.padding > 0) {
      if ((await this.read(this.padding)) === null) throw new TarFormatError('unexpected end of archive')
      this.padding = 0
    }
  }

  private async readBody (size: number): Promise<Buffer> {
    if (size > 64 * 1024 * 1024) throw new TarFormatError('extended header too large')
    const body = await this.read(size)
    if (body === null) throw new TarFormatError('unexpected end of archive')
    if ((await this.read(padTo(size))) === null) throw new TarFormatError('unexpected end of archive')
    return body
  }

  /** Exactly n bytes, or null at a clean end of input (before any byte of them). */
  private async read (n: number): Promise<Buffer | null> {
    while (this.buffered < n) {
      if (!(await this.pull())) {
        if (this.buffered === 0) return null
        throw new TarFormatError('unexpected end of archive')
      }
    }
    const head = this.chunks[0] as Buffer
    if (head.length >= n) {
      const out = head.subarray(0, n)
      this.consumeHead(n)
      return out
    }
    const out = Buffer.allocUnsafe(n)
    let off = 0
    while (off < n) {
      const c = this.chunks[0] as Buffer
      const k = Math.min(c.length, n - off)
      c.copy(out, off, 0, k)
      off += k
      this.consumeHead(k)
    }
    return out
  }

  private discard (n: number): void {
    while (n > 0) {
      const k = Math.min((this.chunks[0] as Buffer).length, n)
      this.consumeHead(k)
      n -= k
    }
  }

  private consumeHead (n: number): void {
    const head = this.chunks[0] as Buffer
    if (n === head.length) this.chunks.shift()
    else this.chunks[0] = head.subarray(n)
    this.buffered -= n
  }

  private async pull (): Promise<boolean> {
    if (this.eof) return false
    const r = await this.it.next()
    if (r.done === true) { this.eof = true; return false }
    const c = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value)
    if (c.length > 0) { this.chunks.push(c); this.buffered += c.length }
    return true
  }

  /** Read the input to its end so that a decompressor process can exit cleanly. */
  private async drain (): Promise<void> {
    this.chunks = []
    this.buffered = 0
    while (await this.pull()) { this.chunks = []; this.buffered = 0 }
  }
}

const padTo = (n: number): number => (BLOCK - (n % BLOCK)) % BLOCK

function isZero (b: Buffer): boolean {
  for (let i = 0; i < b.length; i += 8) if (b.readBigUInt64LE(i) !== 0n) return false
  return true
}

function verifyChecksum (b: Buffer): void {
  let sum = 8 * 0x20 // the checksum field counts as spaces
  for (let i = 0; i < BLOCK; i++) if (i < 148 || i >= 156) sum += b[i] as number
  const stored = parseNumber(b, 148, 8)
  if (stored !== sum) throw new TarFormatError('invalid tar header checksum (not a tar archive, or corrupt)')
}

/** Octal text, or GNU base-256 when the high bit of the first byte is set. */
function parseNumber (b: Buffer, off: number, len: number): number {
  const first = b[off] as number
  if ((first & 0x80) !== 0) {
    let v = first & 0x7f
    for (let i = 1; i < len; i++) v = v * 256 + (b[off + i] as number)
    return v
  }
  const text = b.toString('latin1', off, off + len).replace(/\0.*$/s, '').trim()
  if (text === '') return 0
  if (!/^[0-7]+$/.test(text)) throw new TarFormatError(`invalid number in tar header: ${JSON.stringify(text)}`)
  return parseInt(text, 8)
}

const cString = (b: Buffer, off = 0, len = b.length): string => {
  const end = b.indexOf(0, off)
  return b.toString('latin1', off, end === -1 || end > off + len ? off + len : end)
}

function parseHeader (b: Buffer, flag: string, size: number): TarEntry {
  let name = cString(b, 0, 100)
  const magic = b.toString('latin1', 257, 263)
  // POSIX ustar keeps a path prefix at 345; GNU's "ustar  " uses those bytes for other fields.
  if (magic === 'ustar\0') {
    const prefix = cString(b, 345, 155)
    if (prefix !== '') name = `${prefix}/${name}`
  }
  let type = TYPES[flag]
  if (type === undefined) throw new TarFormatError(`unsupported tar entry type ${JSON.stringify(flag)}`)
  if (type === 'file' && flag !== '7' && name.endsWith('/')) type = 'directory' // old V7 directories
  return {
    name,
    type,
    mode: parseNumber(b, 100, 8),
    uid: parseNumber(b, 108, 8),
    gid: parseNumber(b, 116, 8),
    size,
    mtime: parseNumber(b, 136, 12),
    linkname: cString(b, 157, 100),
    devmajor: parseNumber(b, 329, 8),
    devminor: parseNumber(b, 337, 8),
    xattrs: new Map()
  }
}

/** "LEN KEY=VALUE\n" records; values stay raw bytes (xattr values are binary). */
function parsePax (b: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>()
  let off = 0
  while (off < b.length) {
    const sp = b.indexOf(0x20, off)
    if (sp === -1) break
    const len = parseInt(b.toString('latin1', off, sp), 10)
    if (!Number.isSafeInteger(len) || len <= 0 || off + len > b.length) throw new TarFormatError('invalid PAX header')
    const rec = b.subarray(sp + 1, off + len - 1) // without the trailing newline
    const eq = rec.indexOf(0x3d)
    if (eq === -1) throw new TarFormatError('invalid PAX header')
    out.set(rec.toString('utf8', 0, eq), rec.subarray(eq + 1))
    off += len
  }
  return out
}

function applyPax (e: TarEntry, pax: Map<string, Buffer>): void {
  for (const [key, value] of pax) {
    if (key === 'path') e.name = value.toString('latin1')
    else if (key === 'linkpath') e.linkname = value.toString('latin1')
    else if (key === 'size') e.size = Number(value.toString('latin1'))
    else if (key === 'mtime') { const t = Math.floor(Number(value.toString('latin1'))); e.mtime = Number.isFinite(t) ? t : 0 }
    else if (key.startsWith('SCHILY.xattr.')) e.xattrs.set(key.slice('SCHILY.xattr.'.length), Buffer.from(value))
    else if (key.startsWith('LIBARCHIVE.xattr.')) {
      let name: string
      try { name = decodeURIComponent(key.slice('LIBARCHIVE.xattr.'.length)) } catch { throw new TarFormatError(`invalid PAX record ${key}`) }
      e.xattrs.set(name, Buffer.from(value.toString('latin1'), 'base64'))
    }
  }
  if (!Number.isSafeInteger(e.size) || e.size < 0) throw new TarFormatError('invalid PAX size')
}
