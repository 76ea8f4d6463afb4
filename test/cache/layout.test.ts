// Cache names: blobs by digest, images by a key over everything that changes the image's bytes.
import t from 'tap'
import { cacheLayout, blobPath, imagePath, imageKey, digestHex, type ImageKeyInput } from '../../launcher/src/cache/layout.js'

const HEX = 'ab'.repeat(32)
const base: ImageKeyInput = {
  manifestDigest: `sha256:${HEX}`,
  arch: 'linux/amd64',
  squashOptions: '-comp lzo -noD',
  converter: 'c/1',
  extraFiles: [{ path: '/etc/rc', content: '# enroot-provenance: docker://r#a:1\n', mode: 0o644 }, { path: '/etc/environment', content: '', mode: 0o644 }]
}

t.test('blobs live under blobs/sha256/<hex>, images under images/<key>.sqsh', async t => {
  const l = cacheLayout('/c')
  t.equal(blobPath(l, `sha256:${HEX}`), `/c/blobs/sha256/${HEX}`)
  t.equal(imagePath(l, HEX), `/c/images/${HEX}.sqsh`)
  t.same([l.tmp, l.locks], ['/c/tmp', '/c/locks'])
})

t.test('a digest that is not sha256 hex never becomes a file name', async t => {
  for (const d of ['sha256:../../etc', `sha512:${'a'.repeat(128)}`, `sha256:${HEX.toUpperCase()}`, HEX]) {
    t.throws(() => digestHex(d), { code: 'DIGEST' }, d)
  }
})

t.test('the image key is stable and changes with every input that changes the image', async t => {
  const k = imageKey(base)
  t.match(k, /^[a-f0-9]{64}$/)
  t.equal(imageKey({ ...base, extraFiles: [...base.extraFiles].reverse() }), k, 'file order does not matter')
  const variants: Array<Partial<ImageKeyInput>> = [
    { manifestDigest: `sha256:${'cd'.repeat(32)}` },
    { arch: 'linux/arm64/v8' },
    { squashOptions: '-comp zstd' },
    { converter: 'c/2' },
    { sourceDateEpoch: '0' },
    { extraFiles: [{ path: '/etc/rc', content: '# enroot-provenance: docker://r#a@sha256:x\n', mode: 0o644 }] }
  ]
  for (const v of variants) t.not(imageKey({ ...base, ...v }), k, JSON.stringify(Object.keys(v)))
})
