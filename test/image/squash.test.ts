// ENROOT_SQUASH_OPTIONS translation, and tar2sqfs runs as the test user: compressor, block size,
// SOURCE_DATE_EPOCH, warnings, and a full disk.
import t from 'tap'
import { execFileSync, spawnSync } from 'node:child_process'
import { chownSync, existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { buildSquashfs, translateSquashOptions } from '../../launcher/src/image/squash.js'
import { EnrootError } from '../../launcher/src/util/errors.js'
import type { LayerFile, ProgressEvent } from '../../launcher/src/image/types.js'
import { IS_ROOT, testUser, userTmp, requireFeature } from '../helpers/env.js'
import { writeLayer } from '../helpers/tar-writer.js'
import { buildAsUser, listImage, catImage } from '../helpers/squash-as-user.js'

t.test('translates mksquashfs options into a tar2sqfs plan', async t => {
  const table: Array<[string, Partial<ReturnType<typeof translateSquashOptions>>]> = [
    ['', { compressor: 'gzip', extra: [] }],
    ['-comp lz4', { compressor: 'lz4', extra: [], ignored: [] }],
    ['-comp lzo -noD -exit-on-error', { compressor: 'lzo', extra: ['level=1'], ignored: [] }],
    ['-comp zstd -Xcompression-level 3 -b 1M', { compressor: 'zstd', extra: ['level=3'], blockSize: 1048576 }],
    ['-comp zstd -noD', { extra: ['level=1'] }],
    ['-comp zstd -Xcompression-level 9 -noD', { extra: ['level=9'] }],
    ['-comp lz4 -Xhc -b 128K', { compressor: 'lz4', extra: ['hc'], blockSize: 131072 }],
    ['-comp xz -Xdict-size 50%', { compressor: 'xz', extra: ['dictsize=50%'] }],
    ['-comp lzo -Xalgorithm lzo1x_1', { compressor: 'lzo', extra: ['level=1'], ignored: ['-Xalgorithm lzo1x_1'] }],
    ['-no-xattrs -exports -processors 3 -all-root -no-progress', { noXattr: true, exportable: true, processors: 3, ignored: [] }],
    ['-all-time 1700000000', { epoch: 1700000000 }],
    ['-noI -noF -noX -no-fragments -no-duplicates', { ignored: ['-noI', '-noF', '-noX', '-no-fragments', '-no-duplicates'] }]
  ]
  for (const [options, want] of table) t.match(translateSquashOptions(options), want, JSON.stringify(options))
})

t.test('rejects options that cannot work, as a configuration error', async t => {
  for (const bad of ['-comp brotli', '-b 3000', '-b 2M', '-Xcompression-level', '-processors x']) {
    t.throws(() => translateSquashOptions(bad), { code: 'CONFIG' }, bad)
  }
})

const superblock = (image: string): string => execFileSync('unsquashfs', ['-s', image], { encoding: 'utf8' })

t.test('uses the requested compressor and block size, warning once per unsupported option', async t => {
  const d = userTmp(t)
  const output = join(d, 'image.sqsh')
  const layer = writeLayer(d, [{ name: 'f', data: 'hello'.repeat(1000) }])
  const r = await buildAsUser({ layers: [layer], output, tmpdir: d, squashOptions: '-comp zstd -b 256K -noF -noF' })
  t.ok(r.ok, JSON.stringify(r))
  const sb = superblock(output)
  t.match(sb, /Compression zstd/)
  t.match(sb, /Block size 262144/)
  t.equal(r.stderr.match(/-noF has no equivalent/g)?.length, 1)
})

t.test('SOURCE_DATE_EPOCH fixes the image time and every file time', async t => {
  const d = userTmp(t)
  const output = join(d, 'image.sqsh')
  const layer = writeLayer(d, [{ name: 'dir/f', data: 'x', mtime: 1600000000 }])
  const r = await buildAsUser({ layers: [layer], output, tmpdir: d, sourceDateEpoch: 1000000000, extraFiles: [{ path: '/etc/rc', content: '', mode: 0o644 }] })
  t.ok(r.ok, JSON.stringify(r))
  t.match(superblock(output), /Creation or last append time Sun Sep  9 01:46:40 2001/)
  const times = execFileSync('unsquashfs', ['-lln', '-UTC', output], { encoding: 'utf8' })
    .split('\n').filter(l => l.includes('squashfs-root/')).map(l => /\d{4}-\d\d-\d\d \d\d:\d\d/.exec(l)?.[0])
  t.ok(times.length >= 4)
  t.same(new Set(times), new Set(['2001-09-09 01:46']))
})

t.test('a full disk fails with SPACE and leaves no partial image', async t => {
  if (!requireFeature(t, 'mounting a tmpfs', IS_ROOT, 'the suite is not root')) return
  const d = userTmp(t)
  const small = join(d, 'small')
  mkdirSync(small)
  const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', small])
  if (!requireFeature(t, 'mounting a tmpfs', m.status === 0, m.stderr?.toString())) return
  t.teardown(() => { spawnSync('umount', ['-l', small]) })
  const u = testUser()
  chownSync(small, u.uid, u.gid)
  const output = join(small, 'image.sqsh')
  const layer = writeLayer(d, [{ name: 'noise', data: randomBytes(4 << 20) }, { name: 'more', data: randomBytes(1 << 20) }])
  const r = await buildAsUser({ layers: [layer], output, tmpdir: d })
  t.notOk(r.ok)
  if (!r.ok) {
    t.equal(r.code, 'SPACE', r.message)
    t.match(r.message, `No space left on device: ${output}`)
  }
  t.notOk(existsSync(output), 'the partial image is removed')
})

t.test('an image with a single empty layer still has a root and the config layer', async t => {
  const d = userTmp(t)
  const output = join(d, 'image.sqsh')
  const r = await buildAsUser({ layers: [writeLayer(d, [])], output, tmpdir: d, extraFiles: [{ path: '/etc/rc', content: 'x', mode: 0o644 }] })
  t.ok(r.ok, JSON.stringify(r))
  t.same([...(await listImage(output)).keys()], ['/', '/etc', '/etc/rc'])
})

/** A layer that "arrives" when the test says so. */
function later (): { promise: Promise<LayerFile>, resolve: (l: LayerFile) => void, reject: (e: unknown) => void } {
  let resolve!: (l: LayerFile) => void
  let reject!: (e: unknown) => void
  const promise = new Promise<LayerFile>((res, rej) => { resolve = res; reject = rej })
  return { promise, resolve, reject }
}

t.test('converts the top-most layers while lower ones are still downloading, to the same image', async t => {
  const d = userTmp(t)
  const bottom = writeLayer(d, [{ name: 'etc/os', data: 'bottom' }, { name: 'gone', data: 'x' }, { name: 'kept', data: 'k' }])
  const top = writeLayer(d, [{ name: 'etc/os', data: 'top' }, { name: '.wh.gone', data: '' }, { name: 'big', data: randomBytes(3 << 20) }])
  const pending = later()
  let readBeforeBottom = 0
  const onProgress = (e: ProgressEvent): void => {
    if (e.kind !== 'convert-bytes') return
    readBeforeBottom = e.bytes
    // The bottom layer arrives only once the top one is being converted: a converter that waited
    // for every layer would never get here (the test would time out).
    pending.resolve(bottom)
  }
  const overlapped = join(d, 'overlapped.sqsh')
  await buildSquashfs({ layers: [pending.promise, top], extraFiles: [], output: overlapped, squashOptions: '-comp zstd -Xcompression-level 1', processors: 1, tmpdir: d, totalBytes: 1, onProgress })
  t.ok(readBeforeBottom > 0, 'the top layer was read before the bottom one arrived')
  const plain = join(d, 'plain.sqsh')
  await buildSquashfs({ layers: [bottom, top], extraFiles: [], output: plain, squashOptions: '-comp zstd -Xcompression-level 1', processors: 1, tmpdir: d })
  t.same(await listImage(overlapped), await listImage(plain))
  t.equal(await catImage(overlapped, 'etc/os'), 'top')
  t.notOk((await listImage(overlapped)).has('/gone'), 'the whiteout of the top layer hid the late bottom file')
})

t.test('a layer download that fails stops the conversion with its error and leaves no image', async t => {
  const d = userTmp(t)
  const top = writeLayer(d, [{ name: 'f', data: 'top' }])
  const middle = later()
  const bottom = later()
  const output = join(d, 'image.sqsh')
  const started = Date.now()
  setTimeout(() => { middle.reject(new EnrootError('NETWORK', 'Transfer from registry was interrupted')) }, 50)
  // The bottom layer never arrives: the failure of the middle one must not wait for it.
  await t.rejects(buildSquashfs({ layers: [bottom.promise, middle.promise, top], extraFiles: [], output, squashOptions: '-comp zstd -Xcompression-level 1', processors: 1, tmpdir: d, totalBytes: 1 }),
    { code: 'NETWORK', message: 'Transfer from registry was interrupted' })
  t.ok(Date.now() - started < 10_000)
  t.notOk(existsSync(output), 'no partial image')
})

t.test('a failed download of a layer the converter has not reached yet fails it at once', async t => {
  const d = userTmp(t)
  const output = join(d, 'image.sqsh')
  const top = later()
  const bottom = later()
  setTimeout(() => { bottom.reject(new EnrootError('DIGEST', 'Checksum mismatch: sha256:00')) }, 50)
  // The converter is waiting on the top layer, which never arrives.
  await t.rejects(buildSquashfs({ layers: [bottom.promise, top.promise], extraFiles: [], output, squashOptions: '-comp zstd -Xcompression-level 1', processors: 1, tmpdir: d, totalBytes: 1 }), { code: 'DIGEST' })
  t.notOk(existsSync(output))
})
