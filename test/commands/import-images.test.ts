// Images the suite builds and pushes with skopeo, imported through the real registry as the
// unprivileged user: every layer feature the flattener handles, mixed compression, and hostile layers
// that must fail by name and leave no output and no cache entry behind.
import t from 'tap'
import { existsSync, readdirSync, mkdtempSync, rmSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { enroot, enrootEnv, userTmp, requireFeature } from '../helpers/env.js'
import { registryAvailable, startRegistry, type TestRegistry } from '../helpers/registry.js'
import { busyboxImage, writeOciLayout, pushLayout } from '../helpers/oci-image.js'
import { tarBuffer, t as e } from '../helpers/tar-writer.js'

const avail = registryAvailable()
let reg: TestRegistry | undefined
const regDir = mkdtempSync(join(tmpdir(), 'enroot-images-reg-'))

const lower = tarBuffer([
  e.dir('etc'), e.file('etc/gone', 'x'), e.file('etc/kept', 'lower'),
  e.dir('opq'), e.file('opq/old', 'old'),
  e.file('bin/su', 'suid', 0o4755),
  e.file('data/a', 'shared-content'), { name: 'data/b', type: 'hardlink', linkname: 'data/a' },
  { name: 'link', type: 'symlink', linkname: '../../../../etc/passwd' },
  e.file(`long/${'d'.repeat(120)}/${'f'.repeat(150)}`, 'long name')
])
const empty = tarBuffer([])
const upper = tarBuffer([
  e.file('etc/.wh.gone'), e.file('etc/kept', 'upper'),
  e.dir('opq'), e.file('opq/.wh..wh..opq'), e.file('opq/new', 'new')
])

t.before(async () => {
  if (!avail.ok) return
  reg = await startRegistry({ dir: regDir })
  const bb = busyboxImage()
  const layout = writeOciLayout(join(regDir, 'features'), 'v1', {
    ...bb,
    layers: [...bb.layers, { tar: lower, compression: 'gzip' }, { tar: empty, compression: 'none' }, { tar: upper, compression: 'zstd' }],
    config: { Env: ['PATH=/bin', 'A=1'], Cmd: ['sh', '-c', 'echo $A'], WorkingDir: '/work', Volumes: { '/vol': {} } }
  })
  await pushLayout(layout, reg, 'test/features:v1')
  const hostile = writeOciLayout(join(regDir, 'hostile'), 'v1', { ...bb, layers: [...bb.layers, { tar: tarBuffer([e.file('a/../../escape', 'x')]), compression: 'gzip' }] })
  await pushLayout(hostile, reg, 'test/hostile:v1')
  const linkOut = writeOciLayout(join(regDir, 'linkout'), 'v1', { ...bb, layers: [...bb.layers, { tar: tarBuffer([{ name: 'x', type: 'hardlink', linkname: '../../etc/shadow' }]), compression: 'gzip' }] })
  await pushLayout(linkOut, reg, 'test/linkout:v1')
})
t.teardown(async () => { await reg?.stop(); rmSync(regDir, { recursive: true, force: true }) })

function listing (sqsh: string): string {
  return execFileSync('unsquashfs', ['-lln', '-d', '', sqsh], { encoding: 'utf8' })
}
const cat = (sqsh: string, path: string): string => execFileSync('unsquashfs', ['-cat', sqsh, path], { encoding: 'utf8' })

t.test('a multi-layer image with whiteouts, opaque dirs, links, setuid, long names and mixed compression imports as the user', async t => {
  if (!requireFeature(t, 'the test registry', avail.ok, avail.why) || reg === undefined) return
  const dir = userTmp(t)
  const env = enrootEnv(dir, { ENROOT_ALLOW_HTTP: 'y' })
  const r = await enroot(['import', `docker://${reg.host}#test/features:v1`], env, { cwd: dir })
  t.equal(r.status, 0, r.stderr)
  const out = join(dir, 'test+features+v1.sqsh')
  t.ok(existsSync(out), 'default output name')
  const ls = listing(out)
  t.notMatch(ls, /etc\/gone/, 'whiteout removes the lower file')
  t.notMatch(ls, /\.wh\./, 'no whiteout file survives')
  t.equal(cat(out, 'etc/kept'), 'upper', 'upper layer wins')
  t.notMatch(ls, /opq\/old/, 'opaque directory hides lower contents')
  t.match(ls, /opq\/new/)
  t.match(ls, /-rwsr-xr-x 0\/0 +\d+ [^\n]* \/bin\/su\n/, 'setuid kept, owned by root')
  t.match(ls, /\/link -> \.\.\/\.\.\/\.\.\/\.\.\/etc\/passwd/, 'symlink stored as data')
  t.equal(cat(out, 'data/b'), 'shared-content', 'hard link content')
  t.equal(cat(out, `long/${'d'.repeat(120)}/${'f'.repeat(150)}`), 'long name')
  t.match(cat(out, 'etc/rc'), /^# enroot-provenance: docker:\/\/127\.0\.0\.1:\d+#test\/features:v1\n/)
  t.match(cat(out, 'etc/rc'), /exec +'sh' '-c' 'echo \$A'/)
  t.match(cat(out, 'etc/environment'), /^PATH=\/bin\nA=1\n/)
  t.match(cat(out, 'etc/fstab'), /\$\{ENROOT_ROOTFS\}\/vol \/vol none x-create=dir,bind,rw,nosuid,nodev/)
  t.match(ls, /\/work\n/, 'WorkingDir created')
})

for (const [name, entry] of [['hostile', 'a/../../escape'], ['linkout', 'x']] as const) {
  t.test(`a ${name} layer fails naming the entry and leaves no output or cache entry`, async t => {
    if (!requireFeature(t, 'the test registry', avail.ok, avail.why) || reg === undefined) return
    const dir = userTmp(t)
    const env = enrootEnv(dir, { ENROOT_ALLOW_HTTP: 'y' })
    const r = await enroot(['import', '-o', 'out.sqsh', `docker://${reg.host}#test/${name}:v1`], env, { cwd: dir })
    t.equal(r.status, 1)
    t.match(r.stderr, new RegExp(`\\[ERROR\\] Invalid layer entry in sha256:[0-9a-f]{64}: ${entry.replace(/\./g, '\\.')}`))
    t.equal(r.stderr.trim().split('\n').filter(l => l.startsWith('[ERROR]')).length, 1, 'one error line')
    t.notOk(existsSync(join(dir, 'out.sqsh')), 'no output file')
    const images = join(env.ENROOT_CACHE_PATH as string, 'images')
    const left = existsSync(images) ? readdirSync(images).filter(f => f.endsWith('.sqsh')) : []
    t.same(left, [], 'no converted image in the cache')
    t.notOk(existsSync('/tmp/escape') || existsSync(join(dir, 'escape')), 'nothing written outside')
  })
}
