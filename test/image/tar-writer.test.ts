// TarSink: the bytes it writes, how few writes it takes for many small entries, and back-pressure.
import t from 'tap'
import { Writable } from 'node:stream'
import { TarSink, encodeHeader, paddingFor, END_OF_ARCHIVE } from '../../launcher/src/image/tar-writer.js'
import { TarReader, type TarEntry } from '../../launcher/src/image/tar-reader.js'

const entry = (name: string, size: number): TarEntry =>
  ({ name, type: 'file', mode: 0o644, uid: 0, gid: 0, size, mtime: 1700000000, linkname: '', devmajor: 0, devminor: 0, xattrs: new Map() })

/**
 * A consumer that records each write. `slow`: one write at a time (write() returns false). `lazy`: it
 * accepts writes at once but reads each chunk's bytes only later, like a socket whose kernel buffer is
 * full, so a writer that touched a buffer before its write callback would be caught.
 */
function recorder (mode: 'fast' | 'slow' | 'lazy' = 'fast'): { out: Writable, writes: Buffer[] } {
  const writes: Buffer[] = []
  const out = new Writable({
    highWaterMark: mode === 'slow' ? 1 : 16 * 1024 * 1024,
    write (chunk: Buffer, _enc, cb) {
      if (mode === 'lazy') { setImmediate(() => { writes.push(Buffer.from(chunk)); cb() }); return }
      writes.push(Buffer.from(chunk))
      if (mode === 'slow') setImmediate(cb); else cb()
    }
  })
  return { out, writes }
}

async function * chunked (data: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let off = 0; off < data.length; off += size) yield data.subarray(off, off + size)
}

t.test('writes the same tar bytes as header + data + padding, gathering small pieces into few writes', async t => {
  const { out, writes } = recorder()
  const sink = new TarSink(out)
  const expected: Buffer[] = []
  for (let i = 0; i < 2000; i++) {
    const e = entry(`small/f${i}`, 1 + (i * 37) % 900)
    const data = Buffer.alloc(e.size, i % 251)
    await sink.entry(e, i % 2 === 0 ? data : chunked(data, 100))
    expected.push(encodeHeader(e), data, paddingFor(e.size))
  }
  const big = Buffer.alloc(3 * 1024 * 1024 + 17, 9)
  await sink.entry(entry('big', big.length), chunked(big, 256 * 1024))
  expected.push(encodeHeader(entry('big', big.length)), big, paddingFor(big.length), END_OF_ARCHIVE)
  await sink.end()
  const all = Buffer.concat(expected)
  t.ok(Buffer.concat(writes).equals(all), 'byte for byte')
  t.equal(sink.bytes, all.length)
  // 2000 entries of three pieces each were ~6000 writes before batching.
  t.ok(writes.length < 40, `${writes.length} writes`)
})

t.test('what it writes reads back entry by entry', async t => {
  const { out, writes } = recorder()
  const sink = new TarSink(out)
  await sink.entry(entry('a', 5), Buffer.from('hello'))
  await sink.entry({ ...entry('d/', 0), type: 'directory' })
  await sink.entry(entry('b', 700 * 1024), Buffer.alloc(700 * 1024, 1))
  await sink.end()
  async function * one (): AsyncGenerator<Buffer> { yield Buffer.concat(writes) }
  const r = new TarReader(one())
  const names: string[] = []
  for (let e = await r.next(); e !== null; e = await r.next()) names.push(`${e.name}:${e.size}`)
  t.same(names, ['a:5', 'd/:0', `b:${700 * 1024}`])
})

t.test('waits for a slow consumer instead of buffering without bound', async t => {
  const { out, writes } = recorder('slow')
  const sink = new TarSink(out)
  const expected: Buffer[] = []
  for (let i = 0; i < 50; i++) {
    const e = entry(`f${i}`, 64 * 1024 + i)
    const data = Buffer.alloc(e.size, i)
    await sink.entry(e, data)
    expected.push(encodeHeader(e), data, paddingFor(e.size))
    t.ok(out.writableLength <= 1024 * 1024, `at most one batch queued (${out.writableLength} bytes)`)
  }
  await sink.end()
  t.ok(Buffer.concat(writes).equals(Buffer.concat([...expected, END_OF_ARCHIVE])), 'byte for byte')
})

t.test('an in-process consumer that keeps chunks sees every byte intact (batches are never reused)', async t => {
  const { out, writes } = recorder('lazy')
  const sink = new TarSink(out)
  const expected: Buffer[] = []
  for (let i = 0; i < 400; i++) {
    const e = entry(`f${i}`, 5000 + i)
    const data = Buffer.alloc(e.size, i % 256)
    await sink.entry(e, data)
    expected.push(encodeHeader(e), data, paddingFor(e.size))
  }
  await sink.end()
  await new Promise<void>(resolve => { out.once('finish', () => resolve()) })
  t.ok(Buffer.concat(writes).equals(Buffer.concat([...expected, END_OF_ARCHIVE])), 'byte for byte')
})

t.test('a consumer that goes away fails the next write with EPIPE instead of hanging', async t => {
  const out = new Writable({ highWaterMark: 1, write (_c, _e, cb) { setTimeout(cb, 1000) } })
  const sink = new TarSink(out)
  setTimeout(() => out.destroy(), 20)
  await t.rejects((async () => { for (let i = 0; i < 100; i++) await sink.entry(entry(`f${i}`, 600 * 1024), Buffer.alloc(600 * 1024)) })(), { code: 'EPIPE' })
})
