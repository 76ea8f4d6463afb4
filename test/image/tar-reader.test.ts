// The tar reader against archives written by GNU tar (gnu and posix formats) and by our writer, fed in
// awkward chunk sizes; and the writer's output against GNU tar's reader.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdirSync, writeFileSync, linkSync, symlinkSync, mkdtempSync, rmSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { TarReader, type TarEntry } from '../../launcher/src/image/tar-reader.js'
import { tarBuffer } from '../helpers/tar-writer.js'

interface Read { entry: TarEntry, data: Buffer }

async function readAll (tar: Buffer, chunk = 65536): Promise<Read[]> {
  async function * chunks (): AsyncGenerator<Buffer> {
    for (let i = 0; i < tar.length; i += chunk) yield tar.subarray(i, i + chunk)
  }
  const r = new TarReader(chunks())
  const out: Read[] = []
  for (let e = await r.next(); e !== null; e = await r.next()) {
    const parts: Buffer[] = []
    // read every other body, to prove skipping works too
    if (out.length % 2 === 0) for await (const c of r.body()) parts.push(Buffer.from(c))
    out.push({ entry: e, data: Buffer.concat(parts) })
  }
  return out
}

const LONG = `${'x'.repeat(120)}/${'y'.repeat(150)}`

function gnuTar (format: 'gnu' | 'posix'): Buffer {
  const d = mkdtempSync(join(tmpdir(), 'tar-reader-'))
  try {
    mkdirSync(join(d, 'src', LONG), { recursive: true })
    writeFileSync(join(d, 'src', LONG, 'f'), 'hello')
    linkSync(join(d, 'src', LONG, 'f'), join(d, 'src', 'hard'))
    symlinkSync(`/${LONG}/f`, join(d, 'src', 'sym'))
    writeFileSync(join(d, 'src', 'big'), Buffer.alloc(200000, 7))
    execFileSync('tar', [`--format=${format}`, '--sort=name', '-cf', join(d, 'a.tar'), '-C', join(d, 'src'), '.'])
    return readFileSync(join(d, 'a.tar'))
  } finally { rmSync(d, { recursive: true, force: true }) }
}

for (const format of ['gnu', 'posix'] as const) {
  t.test(`reads GNU tar's ${format} format: long names, long link targets, hard links`, async t => {
    const tar = gnuTar(format)
    for (const chunk of [3, 511, 513, 65536]) {
      const got = await readAll(tar, chunk)
      const byName = new Map(got.map(r => [r.entry.name.replace(/^\.\//, ''), r]))
      t.equal(byName.get('big')?.entry.size, 200000, `chunk ${chunk}`)
      t.equal(byName.get(`${LONG}/`)?.entry.type, 'directory')
      t.equal(byName.get('sym')?.entry.linkname, `/${LONG}/f`)
      // the sorted archive stores 'hard' first; the long path is the hard link to it
      t.equal(byName.get('hard')?.entry.type, 'file')
      t.equal(byName.get(`${LONG}/f`)?.entry.type, 'hardlink')
      t.equal(byName.get(`${LONG}/f`)?.entry.linkname, './hard')
    }
  })
}

t.test('our writer round-trips names, link targets, modes and xattrs, and GNU tar agrees', async t => {
  const tar = tarBuffer([
    { name: `${LONG}/file`, data: 'data', mode: 0o4755, xattrs: { 'user.a': Buffer.from([0, 1, 2, 255]) } },
    { name: 'sym', type: 'symlink', linkname: `../${LONG}` },
    { name: 'gnu-long', type: 'symlink', linkname: `/${LONG}`, gnuLong: true },
    { name: 'fifo', type: 'fifo', mode: 0o600 },
    { name: 'ünïcode', data: '' }
  ])
  const got = await readAll(tar, 700)
  t.same(got.map(r => r.entry.name), [`${LONG}/file`, 'sym', 'gnu-long', 'fifo', Buffer.from('ünïcode').toString('latin1')])
  t.equal(got[0]?.data.toString(), 'data')
  t.equal(got[0]?.entry.mode, 0o4755)
  t.same(got[0]?.entry.xattrs.get('user.a'), Buffer.from([0, 1, 2, 255]))
  t.equal(got[1]?.entry.linkname, `../${LONG}`)
  t.equal(got[2]?.entry.linkname, `/${LONG}`)
  t.equal(got[3]?.entry.type, 'fifo')
  const listing = execFileSync('tar', ['-tvf', '-'], { input: tar, encoding: 'utf8' })
  t.match(listing, `${LONG}/file`)
  t.match(listing, 'ünïcode')
  // non-UTF-8 bytes in a name survive as bytes, short (ustar) or long (PAX)
  for (const raw of [Buffer.from([0x66, 0xff, 0xfe, 0x66]), Buffer.concat([Buffer.alloc(150, 0x61), Buffer.from([0xff])])]) {
    const back = await readAll(tarBuffer([{ name: '', rawName: raw, data: '' }]))
    t.same(Buffer.from(back[0]?.entry.name ?? '', 'latin1'), raw)
  }
})

t.test('rejects a header with a bad checksum', async t => {
  const tar = tarBuffer([{ name: 'f', data: 'x' }])
  tar[0] = 0x67
  await t.rejects(readAll(tar), /invalid tar header checksum/)
})

t.test('rejects an archive cut in the middle of a file', async t => {
  const tar = tarBuffer([{ name: 'f', data: Buffer.alloc(5000) }])
  await t.rejects(readAll(tar.subarray(0, 2048)), /unexpected end of archive/)
})

t.test('an archive without end-of-archive blocks ends cleanly at a header boundary', async t => {
  const tar = tarBuffer([{ name: 'f', data: 'x' }])
  const got = await readAll(tar.subarray(0, 1024))
  t.equal(got.length, 1)
})

t.test('the size field of a hard link does not swallow the next header', async t => {
  const tar = tarBuffer([{ name: 'a', data: 'aaa' }, { name: 'b', type: 'hardlink', linkname: 'a' }, { name: 'c', data: 'c' }])
  // patch b's size field to 3 (as some writers do) and fix its checksum
  const off = 1024
  tar.write('00000000003\0', off + 124, 12, 'latin1')
  tar.fill(0x20, off + 148, off + 156)
  let sum = 0
  for (let i = off; i < off + 512; i++) sum += tar[i] as number
  tar.write(sum.toString(8).padStart(6, '0') + '\0 ', off + 148, 8, 'latin1')
  const got = await readAll(tar)
  t.same(got.map(r => r.entry.name), ['a', 'b', 'c'])
})
