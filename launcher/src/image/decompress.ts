// Layer blob → uncompressed tar bytes. The media type says what to expect, but registries lie (gzip
// served as "tar", zstd blobs with a gzip type), so the first bytes decide, like `gzip -d -f` in enroot.
// gzip: node:zlib (runs on libuv's thread pool, off the JS thread). zstd: Node 20 has no zstd, so
// `zstd -dc` reads the blob from stdin.
import { createReadStream } from 'node:fs'
import { open } from 'node:fs/promises'
import { createGunzip } from 'node:zlib'
import { spawn } from 'node:child_process'
import type { Readable } from 'node:stream'
import { EnrootError } from '../util/errors.js'
import { log } from '../util/log.js'

export type Compression = 'gzip' | 'zstd' | 'none'

export interface OpenedLayer {
  /** uncompressed bytes; iteration throws an EnrootError('IMAGE') if decompression fails */
  chunks: AsyncIterable<Buffer>
  /** stop early (on error elsewhere): closes the file and kills a decompressor process */
  abort: () => void
}

/** Magic bytes first; the media type only for blobs too short to tell. */
export function detectCompression (head: Buffer, mediaType: string): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip'
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd'
  if (head.length >= 4) return 'none'
  if (/zstd/.test(mediaType)) return 'zstd'
  if (/gzip/.test(mediaType)) return 'gzip'
  return 'none'
}

async function readHead (path: string): Promise<Buffer> {
  const fh = await open(path, 'r')
  try {
    const buf = Buffer.alloc(4)
    const { bytesRead } = await fh.read(buf, 0, 4, 0)
    return buf.subarray(0, bytesRead)
  } finally { await fh.close() }
}

/** Opens a layer blob; onRead gets the compressed byte counts (for progress). */
export async function openLayer (path: string, mediaType: string, digest: string, onRead?: (n: number) => void): Promise<OpenedLayer> {
  const kind = detectCompression(await readHead(path), mediaType)
  log.debug(`layer ${digest}: ${kind} (media type ${mediaType})`)
  const file = createReadStream(path, { highWaterMark: 1 << 20 })
  if (onRead !== undefined) file.on('data', (c: Buffer | string) => { onRead(c.length) })
  const fail = (err: unknown): EnrootError => err instanceof EnrootError
    ? err
    : new EnrootError('IMAGE', `Could not decompress layer ${digest}: ${(err as Error)?.message ?? String(err)}`, { cause: err })

  if (kind === 'none') return { chunks: wrap(file, fail), abort: () => file.destroy() }
  if (kind === 'gzip') {
    // The default readable high-water mark on purpose: consuming the next chunk already starts zlib on
    // the following one (thread pool), and a deeper buffer makes the async iterator's read() join the
    // buffered chunks into one new buffer (a copy of every byte, and garbage) — measured, not worth it.
    const gunzip = createGunzip({ chunkSize: 1 << 18 })
    file.on('error', (e) => gunzip.destroy(e))
    file.pipe(gunzip)
    return { chunks: wrap(gunzip, fail), abort: () => { file.destroy(); gunzip.destroy() } }
  }
  return openZstd(file, fail)
}

async function * wrap (stream: Readable, fail: (e: unknown) => EnrootError): AsyncGenerator<Buffer> {
  try {
    for await (const c of stream) yield c as Buffer
  } catch (err) { throw fail(err) }
}

function openZstd (file: Readable, fail: (e: unknown) => EnrootError): OpenedLayer {
  const child = spawn('zstd', ['-dc', '-q'], { stdio: ['pipe', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => { if (stderr.length < 4096) stderr += d.toString() })
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on('error', reject)
    child.on('close', (code) => resolve(code))
  })
  exited.catch(() => {}) // observed in chunks(); avoid an unhandled rejection when aborted early
  file.on('error', (e) => child.stdout.destroy(e))
  child.stdin.on('error', () => {}) // EPIPE when zstd stops early: its exit status tells the story
  file.pipe(child.stdin)

  async function * chunks (): AsyncGenerator<Buffer> {
    try {
      for await (const c of child.stdout) yield c as Buffer
      const code = await exited
      if (code !== 0) throw new Error(`zstd exited with status ${String(code)}: ${stderr.trim()}`)
    } catch (err) {
      const e = err as NodeJS.ErrnoException
      if (e.code === 'ENOENT' && e.syscall?.startsWith('spawn') === true) {
        throw new EnrootError('UNSUPPORTED', 'Command not found: zstd', { hint: 'Install zstd to import zstd-compressed layers.', cause: err })
      }
      throw fail(err)
    }
  }
  return { chunks: chunks(), abort: () => { file.destroy(); if (child.exitCode === null) child.kill('SIGKILL') } }
}
