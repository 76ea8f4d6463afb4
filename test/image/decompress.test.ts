// Layer decompression: the first bytes decide, whatever the media type says.
import t from 'tap'
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { detectCompression, openLayer } from '../../launcher/src/image/decompress.js'
import { compress, tarBuffer } from '../helpers/tar-writer.js'

const GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip'
const ZSTD = 'application/vnd.oci.image.layer.v1.tar+zstd'

t.test('magic bytes win over the media type', async t => {
  t.equal(detectCompression(Buffer.from([0x1f, 0x8b, 8, 0]), ZSTD), 'gzip')
  t.equal(detectCompression(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), GZIP), 'zstd')
  t.equal(detectCompression(Buffer.from('./et'), GZIP), 'none')
  t.equal(detectCompression(Buffer.alloc(0), ZSTD), 'zstd', 'too short to tell: trust the type')
})

async function collect (it: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const c of it) parts.push(c)
  return Buffer.concat(parts)
}

t.test('gzip, zstd and plain blobs decompress to the same tar', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'decompress-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const tar = tarBuffer([{ name: 'f', data: Buffer.alloc(300000, 1) }])
  for (const how of ['gzip', 'zstd', 'none'] as const) {
    const path = join(dir, how)
    writeFileSync(path, compress(tar, how))
    let read = 0
    const layer = await openLayer(path, GZIP, `sha256:${how}`, (n) => { read += n })
    t.same(await collect(layer.chunks), tar, how)
    t.ok(read > 0, `${how}: compressed bytes are counted`)
  }
})

t.test('a corrupt zstd or gzip blob fails as IMAGE naming the digest', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'decompress-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const good = compress(tarBuffer([{ name: 'f', data: Buffer.alloc(100000, 2) }]), 'zstd')
  for (const [name, data] of [['zstd', Buffer.concat([good.subarray(0, 40), Buffer.alloc(100, 9)])], ['gzip', Buffer.from('\x1f\x8b\x08\x00garbage', 'latin1')]] as const) {
    const path = join(dir, name)
    writeFileSync(path, data)
    const layer = await openLayer(path, ZSTD, `sha256:${name}-bad`)
    await t.rejects(collect(layer.chunks), { code: 'IMAGE', message: new RegExp(`Could not decompress layer sha256:${name}-bad`) })
  }
})
