// The extractor behind `enroot load`: confinement to the target directory without trusting its input,
// and enroot's mode rules (no setuid/setgid, fixperms).
import t from 'tap'
import { mkdtempSync, rmSync, readdirSync, lstatSync, readFileSync, mkdirSync, type Stats } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { extractTar, extractedMode } from '../../launcher/src/image/extract.js'
import { EnrootError } from '../../launcher/src/util/errors.js'
import { tarBuffer, type TestEntry } from '../helpers/tar-writer.js'

async function * chunks (b: Buffer): AsyncIterable<Buffer> {
  for (let i = 0; i < b.length; i += 700) yield b.subarray(i, i + 700)
}

function dirs (t: { teardown: (fn: () => void) => unknown }): { root: string, outside: string } {
  const base = mkdtempSync(join(tmpdir(), 'enroot-extract-'))
  t.teardown(() => { rmSync(base, { recursive: true, force: true }) })
  const root = join(base, 'root')
  const outside = join(base, 'outside')
  mkdirSync(root)
  mkdirSync(outside)
  return { root, outside }
}

const extract = async (root: string, entries: TestEntry[]): Promise<unknown> =>
  await extractTar(chunks(tarBuffer(entries)), root).then(() => undefined, (e: unknown) => e)

t.test('refuses a path through a symlink of the same stream, and writes nothing outside', async t => {
  const { root, outside } = dirs(t)
  const err = await extract(root, [{ name: 'escape', type: 'symlink', linkname: outside }, { name: 'escape/pwned', data: 'x' }])
  t.ok(err instanceof EnrootError && err.code === 'IMAGE', String(err))
  t.match(String((err as Error).message), 'Invalid image entry: escape/pwned (escape is not a directory)')
  t.same(readdirSync(outside), [])
})

t.test('refuses a path through a file, a duplicate, "..", and a hard link to anything but an earlier file', async t => {
  const cases: Array<[TestEntry[], string]> = [
    [[{ name: 'f', data: 'x' }, { name: 'f/g', data: 'y' }], 'f is not a directory'],
    [[{ name: 'f', data: 'x' }, { name: 'f', data: 'y' }], 'duplicate entry'],
    [[{ name: 'a/../../x', data: 'x' }], "'..' path component"],
    [[{ name: 'h', type: 'hardlink', linkname: '/etc/passwd' }], 'is not an earlier file'],
    [[{ name: 'd/', type: 'directory', mode: 0o755 }, { name: 'h', type: 'hardlink', linkname: 'd' }], 'is not an earlier file'],
    [[{ name: 'h', type: 'hardlink', linkname: '../x' }], "'..' path component"]
  ]
  for (const [entries, reason] of cases) {
    const { root, outside } = dirs(t)
    const err = await extract(root, entries)
    t.ok(err instanceof EnrootError && err.code === 'IMAGE' && (err as Error).message.includes(reason), `${entries.map(e => e.name).join(', ')}: ${String(err)}`)
    t.same(readdirSync(outside), [])
  }
})

t.test('writes files, links and directories with enroot\'s modes; directories last', async t => {
  const { root } = dirs(t)
  const err = await extract(root, [
    { name: 'ro/', type: 'directory', mode: 0o555, mtime: 1000 },
    { name: 'ro/f', data: 'data', mode: 0o6755, mtime: 2000 },
    { name: 'ro/l', type: 'hardlink', linkname: 'ro/f' },
    { name: 'ro/s', type: 'symlink', linkname: '/nowhere' },
    { name: 'implicit/deep/file', data: '', mode: 0 },
    { name: 'tmp/', type: 'directory', mode: 0o1777 },
    { name: 'p', type: 'fifo', mode: 0o600 }
  ])
  t.equal(err, undefined, String(err))
  const st = (p: string): Stats => lstatSync(join(root, p))
  t.equal(st('ro').mode & 0o7777, 0o755, 'a read-only directory becomes writable by its owner')
  t.equal(st('ro').mtimeMs, 1000_000, 'directory mtime set after its contents')
  t.equal(st('ro/f').mode & 0o7777, 0o755, 'setuid and setgid stripped')
  t.equal(st('ro/f').mtimeMs, 2000_000)
  t.equal(st('ro/l').ino, st('ro/f').ino)
  t.equal(readFileSync(join(root, 'ro/l'), 'utf8'), 'data')
  t.ok(st('ro/s').isSymbolicLink())
  t.equal(st('implicit/deep').mode & 0o7777, 0o755, 'missing parents are made 0755')
  t.equal(st('implicit/deep/file').mode & 0o7777, 0o400, 'the owner can read every file')
  t.equal(st('tmp').mode & 0o7777, 0o1777, 'the sticky bit is kept')
  t.ok(st('p').isFIFO())
})

t.test('extractedMode is enroot\'s --mode=u-s,g-s plus fixperms', async t => {
  t.equal(extractedMode(0o4755, false), 0o755)
  t.equal(extractedMode(0o2555, true), 0o755)
  t.equal(extractedMode(0o000, false), 0o400)
  t.equal(extractedMode(0o001, false), 0o501)
  t.equal(extractedMode(0o1777, true), 0o1777)
})
