// Layer merging, checked on real squashfs images built by the unprivileged test user and read back
// with unsquashfs/rdsquashfs (never with our own reader).
import t from 'tap'
import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { userTmp } from '../helpers/env.js'
import { writeLayer, type TestEntry } from '../helpers/tar-writer.js'
import { buildAsUser, listImage, catImage, statImage, xattrsImage, type Listed } from '../helpers/squash-as-user.js'

const LONG_DIR = `long/${'d'.repeat(120)}`
const VERY_LONG = `p/${`${'s'.repeat(50)}/`.repeat(5)}file-past-255`
const GNU_LONG = `gnu/${'g'.repeat(150)}`

const bottom: TestEntry[] = [
  { name: './', type: 'directory' },
  { name: 'etc/', type: 'directory' },
  { name: 'etc/passwd', data: 'root-lower' },
  { name: 'etc/shadow', data: 's', mode: 0o600 },
  { name: 'opq/', type: 'directory' },
  { name: 'opq/old', data: 'old' },
  { name: 'opq/sub/deep', data: 'deep' },
  { name: 'wh/', type: 'directory' },
  { name: 'wh/gone', data: 'gone' },
  { name: 'wh/dir/', type: 'directory' },
  { name: 'wh/dir/inner', data: 'inner' },
  { name: 'wh/kept', data: 'kept' },
  { name: 'tmp/', type: 'directory', mode: 0o1777 },
  { name: 'work/', type: 'directory', mode: 0o700 },
  { name: 'bin/su', data: 'su', mode: 0o4755 },
  { name: 'bin/sg', data: 'sg', mode: 0o2755 },
  { name: 'shadowed-target', data: 'original content' },
  { name: 'hl-shadow', type: 'hardlink', linkname: 'shadowed-target' },
  { name: 'hl-shadow2', type: 'hardlink', linkname: './shadowed-target' },
  { name: 'hl/a', data: 'same' },
  { name: 'hl/b', type: 'hardlink', linkname: 'hl/a' },
  { name: 'lib', type: 'symlink', linkname: 'usr/lib' },
  { name: 'usr/lib/libc.so', data: 'libc' },
  { name: 'rel', type: 'symlink', linkname: '../../../etc' },
  { name: 'fifo', type: 'fifo' },
  { name: 'dev/', type: 'directory' },
  { name: 'dev/null', type: 'char', devmajor: 1, devminor: 3 },
  { name: 'dev/sub/x', data: 'x' },
  { name: 'chardev', type: 'char', devmajor: 5, devminor: 1 },
  { name: 'blockdev', type: 'block', devmajor: 8, devminor: 0 },
  { name: 'xattr-file', data: 'x', xattrs: { 'user.keep': '1', 'security.capability': 'cap', 'security.selinux': 'label', 'trusted.overlay.opaque': 'y' } },
  { name: 'replaced/', type: 'directory' },
  { name: 'replaced/child', data: 'child' },
  { name: 'planted', type: 'symlink', linkname: '/' },
  { name: 'samelayer', type: 'symlink', linkname: '/etc' },
  { name: 'samelayer/passwd', data: 'through a symlink' }
]
const top: TestEntry[] = [
  { name: 'etc/passwd', data: 'root-upper' },
  { name: 'opq/.wh..wh..opq' },
  { name: 'opq/new', data: 'new' },
  { name: 'wh/.wh.gone' },
  { name: 'wh/.wh.dir' },
  { name: '.wh..wh.plnk/', type: 'directory' },
  { name: 'shadowed-target', data: 'upper content' },
  { name: 'replaced', data: 'now a file' },
  { name: 'planted/passwd', data: 'inside' },
  { name: 'tmp/upper-file', data: 'u' },
  { name: '/abs/file', data: 'abs' },
  { name: `${LONG_DIR}/f`, data: 'long' },
  { name: VERY_LONG, data: 'very long' },
  { name: GNU_LONG, data: 'gnu', gnuLong: true },
  { name: 'gnu/link', type: 'symlink', linkname: `/${GNU_LONG}`, gnuLong: true }
]

t.test('merging three layers (gzip, empty zstd, plain tar)', async t => {
  const d = userTmp(t)
  const output = join(d, 'image.sqsh')
  const layers = [writeLayer(d, bottom, 'gzip'), writeLayer(d, [], 'zstd'), writeLayer(d, top, 'none')]
  const r = await buildAsUser({
    layers, output, tmpdir: d,
    extraFiles: [
      { path: '/etc/rc', content: 'rc', mode: 0o644 },
      { path: '/work', content: '', mode: 0o755, kind: 'directory' },
      { path: '/new/workdir', content: '', mode: 0o755, kind: 'directory' }
    ]
  })
  if (!r.ok) throw new Error(`${r.code}: ${r.message}\n${r.stderr}`)
  const ls = await listImage(output)
  const has = (p: string): boolean => ls.has(p)
  const entry = (p: string): Listed => ls.get(p) ?? { mode: 'missing', size: '' }
  const cat = async (p: string): Promise<string> => await catImage(output, p)

  t.test('an upper file shadows the lower one', async t => {
    t.equal(await cat('etc/passwd'), 'root-upper')
    t.equal(entry('/etc/shadow').mode, '-rw-------')
  })
  t.test('an opaque directory hides only the lower contents of its directory', async t => {
    t.ok(has('/opq/new'))
    t.notOk(has('/opq/old'))
    t.notOk(has('/opq/sub'))
  })
  t.test('whiteouts hide files and whole directories of lower layers', async t => {
    t.notOk(has('/wh/gone'))
    t.notOk(has('/wh/dir'))
    t.notOk(has('/wh/dir/inner'))
    t.ok(has('/wh/kept'))
  })
  t.test('whiteout and AUFS bookkeeping entries never appear', async t => {
    t.same([...ls.keys()].filter(p => p.includes('.wh.')), [])
  })
  t.test('setuid, setgid and sticky bits are kept', async t => {
    t.equal(entry('/bin/su').mode, '-rwsr-xr-x')
    t.equal(entry('/bin/sg').mode, '-rwxr-sr-x')
    t.equal(entry('/tmp').mode, 'drwxrwxrwt')
  })
  t.test('a hard link to a file shadowed by an upper layer keeps the original content', async t => {
    t.equal(await cat('shadowed-target'), 'upper content')
    t.equal(await cat('hl-shadow'), 'original content')
    t.equal(await cat('hl-shadow2'), 'original content')
    const a = await statImage(output, '/hl-shadow')
    const b = await statImage(output, '/hl-shadow2')
    t.equal(a.inode, b.inode, 'both links to the shadowed file share one inode')
    if (r.ok) t.ok(r.stats.spooledFiles > 0, 'shadowed files were spooled')
    t.same(readdirSync(d).filter(f => f.startsWith('flatten-')), [], 'and the spool is gone')
  })
  t.test('hard links within a layer share one inode', async t => {
    const a = await statImage(output, '/hl/a')
    const b = await statImage(output, '/hl/b')
    t.equal(a.inode, b.inode)
    t.equal(a.links, 2)
    t.equal(await cat('hl/b'), 'same')
  })
  t.test('symlinks are stored as they are, including ones pointing out of the image', async t => {
    t.equal(entry('/lib').target, 'usr/lib')
    t.equal(entry('/rel').target, '../../../etc')
    t.equal(await cat('usr/lib/libc.so'), 'libc')
  })
  t.test('a directory keeps the metadata of the top-most layer that names it, even after its children', async t => {
    t.equal(entry('/tmp').mode, 'drwxrwxrwt', 'the top layer added tmp/upper-file without a tmp/ entry')
    t.ok(has('/tmp/upper-file'))
  })
  t.test('a lower symlink under an upper path becomes a directory; nothing is resolved', async t => {
    t.equal(entry('/planted').mode, 'drwxr-xr-x', 'an implicit parent is 0755')
    t.equal(await cat('planted/passwd'), 'inside')
    t.equal(entry('/samelayer').target, '/etc')
    t.notOk(has('/samelayer/passwd'), 'an entry below a symlink of the same layer is dropped')
    t.equal(await cat('etc/passwd'), 'root-upper', 'nothing was written through a symlink')
  })
  t.test('a path under a parent replaced by a non-directory is hidden', async t => {
    t.equal(entry('/replaced').mode[0], '-')
    t.notOk(has('/replaced/child'))
  })
  t.test('fifos are kept, device nodes are dropped, /dev is emptied', async t => {
    t.equal(entry('/fifo').mode[0], 'p')
    t.notOk(has('/chardev'))
    t.notOk(has('/blockdev'))
    t.ok(has('/dev'))
    t.same([...ls.keys()].filter(p => p.startsWith('/dev/')), [])
    if (r.ok) t.equal(r.stats.droppedDevices, 2)
  })
  t.test('user.* and security.capability xattrs are kept, others dropped', async t => {
    const x = await xattrsImage(output, '/xattr-file')
    t.match(x, /user\.keep=1/)
    t.match(x, /security\.capability=/)
    t.notMatch(x, /selinux|trusted/)
  })
  t.test('long names past 100 and 255 bytes, PAX and GNU, survive', async t => {
    t.equal(await cat(`${LONG_DIR}/f`), 'long')
    t.equal(await cat(VERY_LONG), 'very long')
    t.equal(await cat(GNU_LONG), 'gnu')
    t.equal(entry('/gnu/link').target, `/${GNU_LONG}`)
  })
  t.test('an absolute entry name is stored relative to the root', async t => {
    t.equal(await cat('abs/file'), 'abs')
  })
  t.test('config-layer files shadow the image; its directories keep the image metadata', async t => {
    t.equal(await cat('etc/rc'), 'rc')
    t.equal(entry('/work').mode, 'drwx------', 'an existing WorkingDir keeps its mode')
    t.equal(entry('/new/workdir').mode, 'drwxr-xr-x', 'a missing WorkingDir is created')
  })
  t.test('progress counts every compressed byte', async t => {
    if (r.ok) t.ok(r.progress > 0)
  })
})

t.test('compression is sniffed from the data when the media type lies', async t => {
  const d = userTmp(t)
  const output = join(d, 'image.sqsh')
  const layers = [
    writeLayer(d, [{ name: 'from-gzip', data: 'g' }], 'gzip', 'application/vnd.docker.image.rootfs.diff.tar'),
    writeLayer(d, [{ name: 'from-zstd', data: 'z' }], 'zstd', 'application/vnd.oci.image.layer.v1.tar+gzip'),
    writeLayer(d, [{ name: 'from-plain', data: 'p' }], 'none', 'application/vnd.docker.image.rootfs.diff.tar.gzip')
  ]
  const r = await buildAsUser({ layers, output, tmpdir: d })
  t.ok(r.ok, JSON.stringify(r))
  t.equal(await catImage(output, 'from-gzip'), 'g')
  t.equal(await catImage(output, 'from-zstd'), 'z')
  t.equal(await catImage(output, 'from-plain'), 'p')
})

const hostile: Array<[string, TestEntry, RegExp]> = [
  ['a name that climbs out with ..', { name: '../evil', data: 'x' }, /: \.\.\/evil \('\.\.' path component\)/],
  ['a name with .. in the middle', { name: 'a/../../evil', data: 'x' }, /: a\/\.\.\/\.\.\/evil \('\.\.' path component\)/],
  ['a hard link whose target climbs out', { name: 'link', type: 'hardlink', linkname: '../../etc/passwd' }, /: link \(hard link target .*'\.\.' path component\)/],
  ['a hard link to an absolute path outside the layer', { name: 'link', type: 'hardlink', linkname: '/etc/passwd' }, /: link \(hard link target etc\/passwd is not an earlier file of this layer\)/]
]
for (const [what, bad, message] of hostile) {
  t.test(`fails on ${what}, naming entry and layer, leaving no output`, async t => {
    const d = userTmp(t)
    const output = join(d, 'image.sqsh')
    // a big valid file first, so that tar2sqfs has already written part of the image
    const layer = writeLayer(d, [{ name: 'big', data: randomBytes(3 << 20) }, bad, { name: 'after', data: 'a' }])
    const r = await buildAsUser({ layers: [layer], output, tmpdir: d })
    t.notOk(r.ok)
    if (r.ok) return
    t.equal(r.code, 'IMAGE')
    t.ok(r.message.startsWith(`Invalid layer entry in ${layer.digest}: `), r.message)
    t.match(r.message, message)
    t.notOk(existsSync(output), 'the partial image is removed')
  })
}

t.test('a corrupt layer fails with the layer digest and leaves no output', async t => {
  const d = userTmp(t)
  const output = join(d, 'image.sqsh')
  const layer = writeLayer(d, [{ name: 'f', data: 'x' }], 'none')
  const { writeFileSync } = await import('node:fs')
  writeFileSync(layer.path, Buffer.from('\x1f\x8bnot really gzip at all'))
  const r = await buildAsUser({ layers: [layer], output, tmpdir: d })
  t.notOk(r.ok)
  if (!r.ok) {
    t.equal(r.code, 'IMAGE')
    t.match(r.message, layer.digest)
  }
  t.notOk(existsSync(output))
})
