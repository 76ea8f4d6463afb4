// enroot bundle and the .run it writes: built and run as the test user, with real user namespaces. One
// bundle (zstd, checksum, description) serves most tests; the node binary makes each build ~100 MB of tar.
import t, { type Test } from 'tap'
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { chownSync, copyFileSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, statSync, writeFileSync, writeSync, closeSync } from 'node:fs'
import { join, relative } from 'node:path'
import { enroot, enrootEnv, userTmp, IS_ROOT, testUser, requireFeature, runAsUser, REPO, type RunResult } from '../helpers/env.js'
import { buildRootfs, HAVE_BUSYBOX, HAVE_MKSQUASHFS } from '../helpers/rootfs.js'
import { errorLine } from './fixtures.js'
import { compressionPlan, defaultOutput, defaultTarget, parseSuperblock } from '../../launcher/src/bundle/plan.js'
import { productionModules } from '../../launcher/src/bundle/launcher-files.js'
import { renderHeader, readHeaderTemplate } from '../../launcher/src/bundle/header.js'
import { unusualLibraries } from '../../launcher/src/bundle/node-runtime.js'

// ---- the plan and the header, as data ----

t.test('the payload is compressed as the image was, with gzip when that compressor is missing here', async t => {
  const ctx = (have: string[]) => ({ onPath: (p: string) => have.includes(p), threads: 2, gzipProgram: 'gzip' })
  t.same(compressionPlan({ compression: 'zstd', dataCompressed: true }, ctx(['zstd'])), { name: 'zstd', compress: ['zstd', '-q', '-c', '-T2'], decompress: 'zstd -dc' })
  t.same(compressionPlan({ compression: 'xz', dataCompressed: true }, ctx(['xz'])).decompress, 'xz -dc')
  t.same(compressionPlan({ compression: 'lz4', dataCompressed: true }, ctx(['lz4'])).decompress, 'lz4 -dc')
  t.same(compressionPlan({ compression: 'lzo', dataCompressed: true }, ctx([])), { name: 'gzip', compress: ['gzip', '-n', '-c'], decompress: 'gzip -dc', fallbackFrom: 'lzo' })
  t.same(compressionPlan({ compression: 'gzip', dataCompressed: true }, { ...ctx(['pigz']), gzipProgram: 'pigz' }).compress, ['pigz', '-n', '-c', '-p', '2'])
  t.same(compressionPlan({ compression: 'gzip', dataCompressed: false }, ctx([])), { name: 'none', compress: [], decompress: 'cat' })
  t.same(parseSuperblock('Compression lzo\nBlock size 131072\nData is uncompressed\n'), { compression: 'lzo', dataCompressed: false })
  t.equal(parseSuperblock('garbage'), undefined)
})

t.test('the output defaults to IMAGE minus .sqsh plus .run, the target to the output minus .run', async t => {
  t.equal(defaultOutput('/x/ubuntu+24.04.sqsh'), 'ubuntu+24.04.run')
  t.equal(defaultOutput('/x/tool.squashfs'), 'tool.squashfs.run')
  t.equal(defaultTarget('/y/ubuntu.run'), 'ubuntu')
  t.equal(defaultTarget('/y/bundle.bin'), 'bundle.bin')
})

t.test('the header records its own size in bytes, and a description cannot inject shell', async t => {
  const values = {
    description: `it's $(touch /tmp/x) @ENTRY@`, compression: 'zstd', decompress: 'zstd -dc', targetDir: 'a b', payloadSize: 123456789,
    uncompressedKb: 99, runtimeVersion: '4.1.2', buildGlibc: '2.36', entry: 'bin/enroot'
  }
  const h = renderHeader(readHeaderTemplate(), values)
  t.match(h, new RegExp(`^header_size=${Buffer.byteLength(h)}$`, 'm'))
  t.match(h, /^description='it'\\''s \$\(touch \/tmp\/x\) @ENTRY@'$/m)
  t.match(h, /^sha256_sum='0'$/m)
})

t.test('the launcher\'s node_modules are exactly npm\'s production tree', async t => {
  const npm = execFileSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: REPO, encoding: 'utf8' })
    .split('\n').filter(l => l !== '').slice(1).map(p => relative(REPO, p)).sort()
  t.same(productionModules(REPO).map(p => relative(REPO, p)), [...new Set(npm)])
})

t.test('shared libraries beyond glibc and the C++ runtime are reported', async t => {
  t.same(unusualLibraries('\tlinux-vdso.so.1 (0x1)\n\tlibstdc++.so.6 => /lib/libstdc++.so.6 (0x2)\n\tlibnode.so.108 => /lib/libnode.so.108 (0x3)\n\t/lib64/ld-linux-x86-64.so.2 (0x4)\n'), ['libnode.so.108'])
})

// ---- building and running ----

const canRun = (tt: Test): boolean =>
  requireFeature(tt, 'busybox-static and mksquashfs', HAVE_BUSYBOX && HAVE_MKSQUASHFS) &&
  requireFeature(tt, 'the native runtime', existsSync(join(REPO, 'native', 'build', 'Release', 'enroot_native.node')), 'run npm run build:native') &&
  requireFeature(tt, 'zstd', existsSync('/usr/bin/zstd'))

const own = (p: string): string => { if (IS_ROOT) chownSync(p, testUser().uid, testUser().gid); return p }
/** A directory the test user owns. */
const userDir = (p: string): string => { mkdirSync(p, { recursive: true }); return own(p) }

/** A busybox image; squashfs options choose its (and so the bundle's) compression. */
function image (dir: string, name: string, comp: string[]): string {
  const src = join(dir, `${name}-src`)
  if (!existsSync(src)) buildRootfs(src, { files: { 'etc/os-release': 'NAME="busybox bundle"\n' } })
  const out = join(dir, name)
  execFileSync('mksquashfs', [src, out, '-noappend', '-quiet', '-no-progress', ...comp], { stdio: 'ignore' })
  return own(out)
}

interface Shared { dir: string, env: Record<string, string>, run: string, runEnv: Record<string, string>, temp: string, build: RunResult }
let shared: Promise<Shared> | undefined
/** Built once: img.run from img.sqsh (zstd) with -c and -d, in the default place (the current directory). */
async function sharedBundle (): Promise<Shared> {
  shared ??= (async () => {
    const dir = userTmp(t, 'enroot-bundle-')
    const env = enrootEnv(dir)
    const img = image(dir, 'img.sqsh', ['-comp', 'zstd'])
    const build = await enroot(['bundle', '-c', '-d', 'a busybox bundle', img], env, { cwd: dir })
    const temp = userDir(join(dir, 'run-tmp'))
    const runEnv = { PATH: '/usr/bin:/bin', HOME: IS_ROOT ? testUser().home : String(process.env.HOME), LANG: 'C.UTF-8', ENROOT_TEMP_PATH: temp }
    return { dir, env, run: join(dir, 'img.run'), runEnv, temp, build }
  })()
  return await shared
}

async function runBundle (s: Shared, args: string[], extra: Record<string, string> = {}, cwd = s.dir): Promise<RunResult> {
  return await runAsUser(s.run, ['-q', ...args], { env: { ...s.runEnv, ...extra }, cwd })
}

t.test('bundle writes IMAGE.run in the current directory, executable, and logs to stderr only', async t => {
  if (!canRun(t)) return
  const s = await sharedBundle()
  t.equal(s.build.status, 0, s.build.stderr)
  t.equal(s.build.stdout, '')
  t.match(s.build.stderr, /\[INFO\] Generating bundle \(zstd\)/)
  t.equal(statSync(s.run).mode & 0o777, 0o755)
  t.same(readdirSync(s.dir).filter(n => n.includes('.tmp')), [], 'no temporary file next to the output')
  t.same(readdirSync(join(s.dir, 'tmp')), [], 'no scratch directory left in ENROOT_TEMP_PATH')
})

t.test('-i prints the checksum, compression, description, runtime, target and size', async t => {
  if (!canRun(t)) return
  const s = await sharedBundle()
  const r = await runBundle(s, ['-i'])
  t.equal(r.status, 0, r.stderr)
  t.match(r.stdout, /^Checksum: [0-9a-f]{64}\nCompression: zstd\nDescription: a busybox bundle\nRuntime version: 4\.1\.2 \(enroot-ts [^)]*node v\d+[^)]*\)\nTarget directory: img\nUncompressed size: \d+ KB\n$/)
})

/** The shared bundle's header alone, without its checksum and with one value changed: for checks that come before the payload. */
function headerOnly (s: Shared, assignment: string): string {
  const whole = readFileSync(s.run)
  const size = Number(/^header_size=(\d+)$/m.exec(whole.subarray(0, 65536).toString('latin1'))?.[1])
  const key = assignment.split('=')[0] as string
  const file = join(s.dir, `${key}.run`)
  writeFileSync(file, whole.subarray(0, size).toString('latin1').replace(new RegExp(`^${key}=.*$`, 'm'), assignment).replace(/^sha256_sum='[^']*'/m, "sha256_sum='0'"))
  return file
}

t.test('-v checks the host one line at a time and succeeds where containers run', async t => {
  if (!canRun(t)) return
  const s = await sharedBundle()
  const r = await runBundle(s, ['-v'])
  t.equal(r.status, 0, r.stdout)
  for (const l of ['user.max_user_namespaces', 'seccomp (/proc/self/status)', 'overlay filesystem', 'glibc >= ']) t.match(r.stdout, new RegExp(`^${l.replace(/[().]/g, '\\$&')}.*: (OK|missing \\(optional\\))$`, 'm'))
  // a host whose glibc is older than the build's fails the check: pretend the build's is from the future
  const future = headerOnly(s, "build_glibc='9.99'")
  const old = await runAsUser('/bin/sh', [future, '-v'], { env: s.runEnv })
  t.equal(old.status, 1)
  t.match(old.stdout, /^glibc >= 9\.99 .*: missing \(required\)$/m)
})

t.test('the bundle runs a command in its container and passes its exit status through', async t => {
  if (!canRun(t)) return
  const s = await sharedBundle()
  const r = await runBundle(s, ['cat', '/etc/os-release'])
  t.same([r.status, r.stdout], [0, 'NAME="busybox bundle"\n'], r.stderr)
  const seven = await runBundle(s, ['sh', '-c', 'echo hi; exit 7'])
  t.same([seven.status, seven.stdout], [7, 'hi\n'], seven.stderr)
  t.same(readdirSync(s.temp), [], 'the temporary extraction is removed')
})

t.test('-e and -m reach the container; --rc replaces the command script', async t => {
  if (!canRun(t)) return
  const s = await sharedBundle()
  const host = userDir(join(s.dir, 'hostdir'))
  writeFileSync(join(host, 'file'), 'from host\n')
  const r = await runBundle(s, ['-e', 'K=V', '--env=L=W', '-m', `${host}:/mnt/h`, 'sh', '-c', 'echo $K $L; cat /mnt/h/file'])
  t.same([r.status, r.stdout], [0, 'V W\nfrom host\n'], r.stderr)
  writeFileSync(join(s.dir, 'rc'), 'echo "rc says $*"\n')
  const rc = await runBundle(s, ['--rc', 'rc', 'a', 'b'])
  t.same([rc.status, rc.stdout], [0, 'rc says a b\n'], rc.stderr)
})

t.test('-r -w give uid 0 and a writable root; without them the root is read-only', async t => {
  if (!canRun(t)) return
  const s = await sharedBundle()
  const rw = await runBundle(s, ['-r', '-w', 'sh', '-c', 'id -u; touch /new && echo written'])
  t.same([rw.status, rw.stdout], [0, '0\nwritten\n'], rw.stderr)
  const ro = await runBundle(s, ['sh', '-c', 'id -u; touch /new 2>/dev/null || echo read-only'])
  t.same([ro.status, ro.stdout], [0, `${IS_ROOT ? testUser().uid : process.getuid?.()}\nread-only\n`], ro.stderr)
})

t.test('without --all the container still gets enroot\'s defaults (a login shell), unlike enroot\'s bundles', async t => {
  if (!canRun(t)) return
  const s = await sharedBundle()
  const r = await runBundle(s, ['sh', '-c', 'echo "$SHELL"'])
  t.same([r.status, r.stdout], [0, '/bin/sh\n'], r.stderr)
})

t.test('the caller\'s ENROOT_CONFIG_PATH drop-ins do not apply: only the bundle\'s own configuration', async t => {
  if (!canRun(t)) return
  const s = await sharedBundle()
  const cfg = join(s.dir, 'host-config')
  mkdirSync(join(cfg, 'environ.d'), { recursive: true })
  writeFileSync(join(cfg, 'environ.d', '50-host.env'), 'FROM_HOST=1\n')
  const r = await runBundle(s, ['sh', '-c', 'echo "[$FROM_HOST]"'], { ENROOT_CONFIG_PATH: cfg })
  t.same([r.status, r.stdout], [0, '[]\n'], r.stderr)
})

t.test('a failing start leaves no temporary directory either', async t => {
  if (!canRun(t)) return
  const s = await sharedBundle()
  const r = await runBundle(s, ['-c', join(s.dir, 'missing.conf'), 'true'])
  t.equal(r.status, 1)
  t.equal(errorLine(r), `[ERROR] No such file or directory: ${join(s.dir, 'missing.conf')}`)
  t.same(readdirSync(s.temp), [])
})

t.test('a bundle larger than the free space says so before extracting, and leaves nothing behind', async t => {
  if (!canRun(t)) return
  const s = await sharedBundle()
  const huge = headerOnly(s, 'uncompressed_kb=999999999999999')
  const r = await runAsUser('/bin/sh', [huge, 'true'], { env: s.runEnv })
  t.equal(r.status, 1)
  t.match(errorLine(r), /^\[ERROR\] Not enough space left in .*\/img\.\w{10} \(999999999999999 KB needed\)$/)
  t.same(readdirSync(s.temp), [])
})

t.test('-x extracts into the target and exits; -k then says File already exists', async t => {
  if (!canRun(t)) return
  const s = await sharedBundle()
  const cwd = userDir(join(s.dir, 'keep'))
  const x = await runBundle(s, ['-x'], {}, cwd)
  t.equal(x.status, 0, x.stderr)
  t.ok(statSync(join(cwd, 'img', 'bin', 'busybox')).isFile())
  t.ok(statSync(join(cwd, 'img', '.enroot', 'bin', 'node')).isFile(), 'the runtime is in /.enroot')
  const k = await runBundle(s, ['-k', 'true'], {}, cwd)
  t.same([k.status, errorLine(k)], [1, `[ERROR] File already exists: ${join(cwd, 'img')}`])
})

t.test('an unknown option is an error (enroot exits 0 there), a missing value too', async t => {
  if (!canRun(t)) return
  const s = await sharedBundle()
  const r = await runBundle(s, ['--pid', 'true'])
  t.same([r.status, errorLine(r)], [1, '[ERROR] Unknown option: --pid'])
  t.match(r.stderr, /Usage: img\.run \[options\]/)
  t.equal(r.stdout, '')
  const m = await runBundle(s, ['-e'])
  t.same([m.status, errorLine(m)], [1, '[ERROR] Option requires a value: -e'])
})

t.test('SIGTERM to the .run reaches the container; its status comes back and the extraction is removed', async t => {
  if (!canRun(t)) return
  const s = await sharedBundle()
  const u = IS_ROOT ? testUser() : undefined
  const child: ChildProcess = spawn(s.run, ['-q', 'sh', '-c', 'trap "kill $!; echo got TERM; exit 3" TERM; echo ready; sleep 30 >/dev/null 2>&1 & wait'], {
    env: s.runEnv, cwd: s.dir, stdio: ['ignore', 'pipe', 'pipe'], ...(u !== undefined ? { uid: u.uid, gid: u.gid } : {})
  })
  let out = ''
  child.stdout?.on('data', (d: Buffer) => { out += d.toString() })
  const done = new Promise<number | null>(resolve => child.on('close', code => resolve(code)))
  for (let i = 0; i < 400 && !out.includes('ready'); i++) await new Promise(resolve => setTimeout(resolve, 25))
  child.kill('SIGTERM')
  t.equal(await done, 3)
  t.equal(out, 'ready\ngot TERM\n')
  t.same(readdirSync(s.temp), [])
})

t.test('a corrupted payload fails the embedded checksum before anything else', async t => {
  if (!canRun(t)) return
  const s = await sharedBundle()
  const bad = join(s.dir, 'bad.run')
  copyFileSync(s.run, bad)
  own(bad)
  const size = statSync(bad).size
  const fd = openSync(bad, 'r+')
  writeSync(fd, Buffer.from([readFileSync(bad).at(size - 100) as number ^ 0xff]), 0, 1, size - 100)
  closeSync(fd)
  const r = await runAsUser(bad, ['-i'], { env: s.runEnv })
  t.same([r.status, errorLine(r)], [1, '[ERROR] Checksum validation failed'])
  t.equal(r.stdout, '')
})

t.test('a bundle runs where neither node nor enroot is installed', async t => {
  if (!canRun(t)) return
  if (!requireFeature(t, 'root (to hide node in a private mount namespace)', IS_ROOT)) return
  const s = await sharedBundle()
  const u = testUser()
  // every node and enroot on PATH, and the checkout, are hidden; the bundle is all the user has
  const hide = ['/usr/local/bin', '/usr/bin', '/bin', '/usr/local/sbin', '/usr/sbin']
    .flatMap(d => ['node', 'nodejs', 'enroot'].map(n => join(d, n))).filter(p => existsSync(p))
  const script = [
    ...hide.map(p => `mount --bind /dev/null ${p}`),
    `mount -t tmpfs none ${REPO}`,
    `exec setpriv --reuid=${u.uid} --regid=${u.gid} --init-groups env -i PATH=/usr/bin:/bin HOME=${u.home} ENROOT_TEMP_PATH=${s.temp} sh -c ` +
      `'node -e 0 2>/dev/null && echo node is here; ls ${REPO} | wc -l; cd ${s.dir} && ./img.run -q cat /etc/os-release'`
  ].join(' && ')
  const r = await new Promise<{ status: number | null, stdout: string, stderr: string }>(resolve => {
    const c = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    c.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    c.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    c.on('close', status => resolve({ status, stdout, stderr }))
  })
  t.same([r.status, r.stdout], [0, '0\nNAME="busybox bundle"\n'], r.stderr)
})

t.test('--all embeds the ENROOT_* settings and the user\'s drop-ins, and they take effect', async t => {
  if (!canRun(t)) return
  const dir = userTmp(t)
  const env = enrootEnv(dir, { ENROOT_ROOTFS_WRITABLE: 'yes' })
  mkdirSync(join(env.ENROOT_CONFIG_PATH as string, 'environ.d'), { recursive: true })
  writeFileSync(join(env.ENROOT_CONFIG_PATH as string, 'environ.d', '50-user.env'), 'FROM_USER=1\n')
  const img = image(dir, 'all.sqsh', ['-comp', 'zstd'])
  const b = await enroot(['bundle', '--all', img], env, { cwd: dir })
  t.equal(b.status, 0, b.stderr)
  const temp = userDir(join(dir, 'rt'))
  const r = await runAsUser(join(dir, 'all.run'), ['-q', 'sh', '-c', 'touch /new && echo writable; echo "$FROM_USER"'],
    { env: { PATH: '/usr/bin:/bin', HOME: '/', ENROOT_TEMP_PATH: temp }, cwd: dir })
  t.same([r.status, r.stdout], [0, 'writable\n1\n'], r.stderr)
})

t.test('an existing output is an error unless --force; SOURCE_DATE_EPOCH gives identical bundles', async t => {
  if (!canRun(t)) return
  const dir = userTmp(t)
  const env = enrootEnv(dir, { SOURCE_DATE_EPOCH: '1700000000' })
  // uncompressed image: an uncompressed payload, which the .run pipes through cat
  const img = image(dir, 'plain.sqsh', ['-noI', '-noD', '-noF', '-noX'])
  for (const o of ['one.run', 'two.run']) t.equal((await enroot(['bundle', '-o', o, '-t', 'same', img], env, { cwd: dir })).status, 0)
  t.ok(readFileSync(join(dir, 'one.run')).equals(readFileSync(join(dir, 'two.run'))), 'byte-identical')
  const again = await enroot(['bundle', '-o', 'one.run', img], env, { cwd: dir })
  t.same([again.status, errorLine(again)], [1, `[ERROR] File already exists: ${join(dir, 'one.run')}`])
  const forced = await enroot(['bundle', '-f', '-o', 'one.run', '-d', 'second', img], env, { cwd: dir })
  t.equal(forced.status, 0, forced.stderr)
  const temp = userDir(join(dir, 'rt'))
  const info = await runAsUser(join(dir, 'one.run'), ['-i'], { env: { PATH: '/usr/bin:/bin' } })
  t.match(info.stdout, /^Compression: none\nDescription: second\n/m)
  const r = await runAsUser(join(dir, 'one.run'), ['-q', 'echo', 'hi'], { env: { PATH: '/usr/bin:/bin', HOME: '/', ENROOT_TEMP_PATH: temp }, cwd: dir })
  t.same([r.status, r.stdout], [0, 'hi\n'], r.stderr)
})

t.test('bad input: a missing image, a file that is not a squashfs, a bad target', async t => {
  const dir = userTmp(t)
  const env = enrootEnv(dir)
  const missing = await enroot(['bundle', join(dir, 'none.sqsh')], env, { cwd: dir })
  t.same([missing.status, errorLine(missing)], [1, `[ERROR] No such file or directory: ${join(dir, 'none.sqsh')}`])
  writeFileSync(join(dir, 'junk.sqsh'), 'not an image')
  const junk = await enroot(['bundle', join(dir, 'junk.sqsh')], env, { cwd: dir })
  t.same([junk.status, errorLine(junk), junk.stderr.trim().split('\n').length], [1, `[ERROR] Invalid image format: ${join(dir, 'junk.sqsh')}`, 1])
  if (!HAVE_MKSQUASHFS || !HAVE_BUSYBOX) return
  const img = image(dir, 'x.sqsh', ['-comp', 'zstd'])
  const target = await enroot(['bundle', '-t', '..', img], env, { cwd: dir })
  t.same([target.status, errorLine(target)], [1, '[ERROR] Invalid argument: ..'])
  const usage = await enroot(['bundle'], env)
  t.same([usage.status, usage.stdout.startsWith('Usage: enroot bundle')], [1, true])
})

t.test('SIGTERM while bundling leaves no partial .run and no scratch directory', async t => {
  if (!canRun(t)) return
  const dir = userTmp(t)
  const env = enrootEnv(dir)
  const img = image(dir, 'int.sqsh', ['-comp', 'zstd'])
  const u = IS_ROOT ? testUser() : undefined
  const child = spawn('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, join(REPO, 'bin', 'enroot'), 'bundle', img], {
    env, cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], ...(u !== undefined ? { uid: u.uid, gid: u.gid } : {})
  })
  let err = ''
  child.stderr.on('data', (d: Buffer) => { err += d.toString() })
  const done = new Promise<string | null>(resolve => child.on('close', (_, signal) => resolve(signal)))
  for (let i = 0; i < 600 && !err.includes('Generating bundle'); i++) await new Promise(resolve => setTimeout(resolve, 10))
  t.match(err, /Generating bundle/)
  child.kill('SIGTERM')
  t.equal(await done, 'SIGTERM', 'it dies by the signal')
  t.same(readdirSync(dir).filter(n => n.endsWith('.run') || n.endsWith('.tmp')), [])
  t.same(readdirSync(join(dir, 'tmp')), [])
})
