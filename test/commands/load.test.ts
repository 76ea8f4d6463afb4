// `enroot load` end to end, as the unprivileged user, against the suite's real registry: the rootfs it
// writes (files, whiteouts, enroot's config files, owner, no setuid), the name and --force rules, a
// hostile image that cannot write outside the rootfs, a failure that leaves nothing, and `enroot start`.
import t from 'tap'
import { existsSync, readFileSync, lstatSync, readlinkSync, mkdtempSync, rmSync, mkdirSync, chownSync, writeFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { enrootEnv, userTmp, requireFeature, testUser, runAsUser, IS_ROOT, ENROOT, REPO, type RunResult } from '../helpers/env.js'
import { registryAvailable, startRegistry, type TestRegistry } from '../helpers/registry.js'
import { busyboxImage, writeOciLayout, pushLayout } from '../helpers/oci-image.js'
import { tarBuffer } from '../helpers/tar-writer.js'

type T = Parameters<typeof userTmp>[0]
const avail = registryAvailable()
let reg: TestRegistry | undefined
const regDir = mkdtempSync(join(tmpdir(), 'enroot-load-reg-'))
/** a directory the hostile image aims at: it must stay empty */
const outside = mkdtempSync(join(tmpdir(), 'enroot-load-outside-'))
if (IS_ROOT) chownSync(outside, testUser().uid, testUser().gid)

t.before(async () => {
  if (!avail.ok) return
  reg = await startRegistry({ dir: regDir })
  const bb = busyboxImage()
  const upper = tarBuffer([
    { name: 'etc/', type: 'directory', mode: 0o755 },
    { name: 'etc/.wh.group', data: '' },
    { name: 'usr/bin/su', data: 'not really su\n', mode: 0o4755 },
    { name: 'srv/', type: 'directory', mode: 0o2555 },
    { name: 'srv/data', data: 'payload\n', mode: 0o444 },
    { name: 'srv/link', type: 'hardlink', linkname: 'srv/data' },
    { name: 'srv/sym', type: 'symlink', linkname: '../etc/passwd' }
  ])
  await pushLayout(writeOciLayout(join(regDir, 'bb'), 'v1', {
    ...bb,
    layers: [...bb.layers, { tar: upper, compression: 'gzip' }],
    config: { ...bb.config, Env: ['PATH=/bin', 'GREETING=hello world'], WorkingDir: '/work', Labels: { maintainer: 'me' } }
  }), reg, 'test/bb:v1')
  // Lower layer: `escape` is a symlink out of the tree; the upper layer writes through it. The flattener
  // lets the upper (implicit) directory win; the extractor would refuse the path in any case.
  const lower = tarBuffer([{ name: 'escape', type: 'symlink', linkname: outside }, { name: 'abs', type: 'symlink', linkname: outside }, { name: 'abs/pwned', data: 'x' }])
  const hostile = tarBuffer([{ name: 'escape/pwned', data: 'x\n' }])
  await pushLayout(writeOciLayout(join(regDir, 'hostile'), 'v1', { ...bb, layers: [...bb.layers, { tar: lower, compression: 'gzip' }, { tar: hostile, compression: 'gzip' }] }), reg, 'test/hostile:v1')
  const broken = tarBuffer([{ name: 'ok', data: 'fine\n' }, { name: '../../escaped', data: 'x' }])
  await pushLayout(writeOciLayout(join(regDir, 'broken'), 'v1', { ...bb, layers: [...bb.layers, { tar: broken, compression: 'gzip' }] }), reg, 'test/broken:v1')
})
t.teardown(async () => { await reg?.stop(); rmSync(regDir, { recursive: true, force: true }); rmSync(outside, { recursive: true, force: true }) })

function setup (t: T): { dir: string, env: Record<string, string>, data: string } | undefined {
  if (!requireFeature(t, 'the test registry', avail.ok, avail.why)) return undefined
  const dir = userTmp(t)
  const env = enrootEnv(dir, { ENROOT_ALLOW_HTTP: 'y' })
  return { dir, env, data: env.ENROOT_DATA_PATH as string }
}

async function enroot (args: readonly string[], env: Record<string, string>, cwd: string): Promise<RunResult> {
  return await runAsUser('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, ENROOT, ...args], { env, cwd })
}

const errorLine = (r: RunResult): string => r.stderr.split('\n').find(l => l.startsWith('[ERROR]')) ?? ''

t.test('loads an image into $ENROOT_DATA_PATH/<image>+<tag>, owned by the user, with enroot\'s files', async t => {
  const s = setup(t as unknown as T)
  if (s === undefined || reg === undefined) return
  const r = await enroot(['load', `docker://${reg.host}/test/bb:v1`], s.env, s.dir)
  t.equal(r.status, 0, 'exits 0', { stderr: r.stderr })
  const root = join(s.data, 'test+bb+v1')
  t.ok(readFileSync(join(root, 'bin', 'busybox')).equals(readFileSync('/bin/busybox')), 'the image\'s files, byte for byte (a 2 MB file spans many stream chunks)')
  t.equal(readlinkSync(join(root, 'bin', 'sh')), 'busybox', 'symlinks kept as they are')
  t.notOk(existsSync(join(root, 'etc', 'group')), 'a whiteout hides the lower file')
  t.ok(existsSync(join(root, 'etc', 'passwd')))
  const uid = IS_ROOT ? testUser().uid : process.getuid?.()
  t.equal(lstatSync(join(root, 'bin', 'busybox')).uid, uid, 'owned by the invoking user')
  t.equal(lstatSync(join(root, 'usr', 'bin', 'su')).mode & 0o7777, 0o755, 'setuid stripped')
  t.equal(lstatSync(join(root, 'srv')).mode & 0o7777, 0o755, 'setgid stripped, and the owner may write the directory')
  t.equal(lstatSync(join(root, 'srv', 'data')).ino, lstatSync(join(root, 'srv', 'link')).ino, 'hard links kept')
  t.equal(readlinkSync(join(root, 'srv', 'sym')), '../etc/passwd')
  const rc = readFileSync(join(root, 'etc', 'rc'), 'utf8')
  t.match(rc, `# enroot-provenance: docker://${reg.host}#test/bb:v1\n# maintainer me\n`)
  t.match(rc, "cd '/work' && unset OLDPWD || exit 1")
  t.equal(readFileSync(join(root, 'etc', 'environment'), 'utf8'), 'PATH=/bin\nGREETING=hello world\n')
  t.ok(lstatSync(join(root, 'work')).isDirectory(), 'WorkingDir created')
  t.ok(existsSync(join(root, 'etc', 'rc.local')) && existsSync(join(root, 'etc', 'fstab')))
  t.match(r.stderr, `Root filesystem written to ${root}`)

  // The same image again, under another name: only the manifest is fetched.
  const gets = reg.count('GET', '/v2/test/bb/blobs/')
  const again = await enroot(['load', '--name', 'again', `docker://${reg.host}/test/bb:v1`], s.env, s.dir)
  t.equal(again.status, 0, { stderr: again.stderr })
  t.equal(reg.count('GET', '/v2/test/bb/blobs/'), gets, 'blobs come from the cache')
  t.ok(existsSync(join(s.data, 'again', 'bin', 'busybox')))

  // enroot remove must be able to delete what load wrote (read-only directories included).
  const rm = await enroot(['remove', '-f', 'again'], s.env, s.dir)
  t.equal(rm.status, 0, { stderr: rm.stderr })
  t.notOk(existsSync(join(s.data, 'again')))
})

t.test('names: "/" is an invalid argument, an existing rootfs needs --force or ENROOT_FORCE_OVERRIDE', async t => {
  const s = setup(t as unknown as T)
  if (s === undefined || reg === undefined) return
  const uri = `docker://${reg.host}/test/bb:v1`
  const slash = await enroot(['load', '-n', 'a/b', uri], s.env, s.dir)
  t.same([slash.status, errorLine(slash)], [1, '[ERROR] Invalid argument: a/b'])
  const scheme = await enroot(['load', 'podman://busybox'], s.env, s.dir)
  t.same([scheme.status, errorLine(scheme)], [1, '[ERROR] Invalid argument: podman://busybox'])
  const usage = await enroot(['load'], s.env, s.dir)
  t.same([usage.status, usage.stdout.startsWith('Usage: enroot load')], [1, true])

  const mine = join(s.data, 'c')
  mkdirSync(mine)
  writeFileSync(join(mine, 'keep'), 'mine')
  if (IS_ROOT) { chownSync(mine, testUser().uid, testUser().gid); chownSync(join(mine, 'keep'), testUser().uid, testUser().gid) }
  const exists = await enroot(['load', '-n', 'c', uri], s.env, s.dir)
  t.same([exists.status, errorLine(exists)], [1, `[ERROR] File already exists: ${mine}`])
  t.ok(existsSync(join(mine, 'keep')), 'untouched')

  const missing = await enroot(['load', '-f', '-n', 'c', `docker://${reg.host}/test/nope:v1`], s.env, s.dir)
  t.equal(missing.status, 1)
  t.ok(existsSync(join(mine, 'keep')), 'a URI that does not resolve does not cost the old rootfs')

  const forced = await enroot(['load', '-f', '-n', 'c', uri], s.env, s.dir)
  t.equal(forced.status, 0, { stderr: forced.stderr })
  t.notOk(existsSync(join(mine, 'keep')), 'replaced')
  t.ok(existsSync(join(mine, 'bin', 'busybox')))
  const env = { ...s.env, ENROOT_FORCE_OVERRIDE: 'y' }
  const over = await enroot(['load', '-n', 'c', uri], env, s.dir)
  t.equal(over.status, 0, { stderr: over.stderr })
})

t.test('a hostile image cannot write through a symlink out of the rootfs', async t => {
  const s = setup(t as unknown as T)
  if (s === undefined || reg === undefined) return
  const r = await enroot(['load', '-n', 'h', `docker://${reg.host}/test/hostile:v1`], s.env, s.dir)
  t.equal(r.status, 0, { stderr: r.stderr })
  t.same(readdirSync(outside), [], 'nothing written outside')
  const root = join(s.data, 'h')
  t.ok(lstatSync(join(root, 'escape')).isDirectory(), 'the upper layer\'s directory wins over the lower symlink')
  t.equal(readFileSync(join(root, 'escape', 'pwned'), 'utf8'), 'x\n')
  t.ok(lstatSync(join(root, 'abs')).isSymbolicLink(), 'an entry below a symlink of its own layer is dropped')
})

t.test('a failure removes the half-made rootfs', async t => {
  const s = setup(t as unknown as T)
  if (s === undefined || reg === undefined) return
  const r = await enroot(['load', '-n', 'broken', `docker://${reg.host}/test/broken:v1`], s.env, s.dir)
  t.equal(r.status, 1)
  t.match(errorLine(r), /Invalid layer entry in sha256:[0-9a-f]+: \.\.\/\.\.\/escaped \('\.\.' path component\)/)
  t.notOk(existsSync(join(s.data, 'broken')), 'nothing left')
  t.same(readdirSync(s.env.ENROOT_TEMP_PATH as string), [], 'no scratch left')
})

t.test('a loaded rootfs starts', async t => {
  const s = setup(t as unknown as T)
  if (s === undefined || reg === undefined) return
  if (!requireFeature(t, 'the native runtime', existsSync(join(REPO, 'native', 'build', 'Release', 'enroot_native.node')), 'run npm run build:native')) return
  const load = await enroot(['load', '-n', 'run', `docker://${reg.host}/test/bb:v1`], s.env, s.dir)
  t.equal(load.status, 0, { stderr: load.stderr })
  const r = await enroot(['start', 'run', 'cat', '/etc/passwd'], { ...s.env, ENROOT_SYSCONF_PATH: REPO }, s.dir)
  t.equal(r.status, 0, { stderr: r.stderr })
  t.match(r.stdout, /^root:x:0:0:/)
  const pwd = await enroot(['start', 'run', 'sh', '-c', 'pwd; echo "$GREETING"'], { ...s.env, ENROOT_SYSCONF_PATH: REPO }, s.dir)
  t.equal(pwd.stdout, '/work\nhello world\n', { stderr: pwd.stderr })
})
