// Installation (doc/install.md): the .deb that scripts/build-deb.sh builds, unpacked into a fresh tree and
// run from its real paths (/usr, /etc) as the test user; and `make install`/`make uninstall` with a custom
// prefix and sysconfdir. Both package what is already built (NOBUILD), as the suite runs after the build.
import t from 'tap'
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, copyFileSync, symlinkSync, chownSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { REPO, IS_ROOT, testUser, runAsUser, enrootEnv, userTmp, requireFeature } from './helpers/env.js'

// tap's loaders must not reach npm, tsc or the installed product
const cleanEnv = (): NodeJS.ProcessEnv => { const e = { ...process.env }; delete e.NODE_OPTIONS; return e }

const built = ['dist/cli.js', 'native/build/Release/enroot_native.node', 'node_modules/.package-lock.json'].every(f => existsSync(join(REPO, f)))
const haveTools = ['/usr/bin/dpkg-deb', '/usr/bin/mksquashfs', '/usr/bin/squashfuse', '/usr/include/slurm/spank.h'].every(f => existsSync(f))

/** A busybox image: /bin/busybox of busybox-static and the few applets the checks call. */
function busyboxImage (dir: string): string {
  const src = join(dir, 'rootfs')
  for (const d of ['bin', 'etc', 'tmp', 'dev', 'proc']) mkdirSync(join(src, d), { recursive: true })
  copyFileSync('/bin/busybox', join(src, 'bin', 'busybox'))
  for (const a of ['sh', 'echo', 'cat', 'id', 'true']) symlinkSync('busybox', join(src, 'bin', a))
  const image = join(dir, 'busybox.sqsh')
  execFileSync('mksquashfs', [src, image, '-quiet', '-no-progress', '-noappend', '-all-root'], { stdio: 'ignore' })
  if (IS_ROOT) chownSync(image, testUser().uid, testUser().gid)
  return image
}

/** Every regular file and link under dir, relative. */
function files (dir: string, rel = ''): string[] {
  if (!existsSync(join(dir, rel))) return []
  return readdirSync(join(dir, rel), { withFileTypes: true }).flatMap(e =>
    e.isDirectory() ? files(dir, join(rel, e.name)) : [join(rel, e.name)])
}

// The .deb is built once for the file, into a directory that lives as long as the file's tests; gzip
// because xz costs seconds the check does not need.
let debPromise: Promise<string> | undefined
async function buildDeb (): Promise<string> {
  debPromise ??= new Promise((resolve, reject) => {
    const r = spawnSync('bash', [join(REPO, 'scripts', 'build-deb.sh'), '--no-build', '-o', userTmp(t, 'enroot-deb-')],
      { cwd: REPO, env: { ...cleanEnv(), DEB_COMPRESS: 'gzip' }, encoding: 'utf8' })
    if (r.status !== 0) reject(new Error(`build-deb.sh failed (${String(r.status)}): ${r.stderr}`))
    else resolve(r.stdout.trim())
  })
  return await debPromise
}

t.test('the .deb carries the CLI, the addon, the plugin, the drop-ins and /etc/enroot as conffiles', async t => {
  if (!requireFeature(t, 'a built checkout', built, 'run make')) return
  if (!requireFeature(t, 'dpkg-deb, squashfs tools and Slurm headers', haveTools)) return
  const deb = await buildDeb()
  t.match(deb, /\/enroot-ts_\d+\.\d+\.\d+_[a-z0-9]+\.deb$/)
  const field = (f: string): string => execFileSync('dpkg-deb', ['-f', deb, f], { encoding: 'utf8' }).trim()
  t.equal(field('Package'), 'enroot-ts')
  t.match(field('Depends'), /^nodejs \(>= 20\), squashfs-tools, squashfs-tools-ng, squashfuse, fuse3, zstd, libc6/)

  const listing = execFileSync('dpkg-deb', ['-c', deb], { encoding: 'utf8', maxBuffer: 64 << 20 })
  const entries = new Map(listing.split('\n').filter(l => l !== '').map(l => {
    const f = l.split(/\s+/)
    return [(f[5] as string).replace(/^\./, ''), f[0] as string]
  }))
  for (const p of ['/usr/bin/enroot', '/usr/lib/enroot/bin/enroot', '/usr/lib/enroot/dist/cli.js', '/usr/lib/enroot/package.json',
    '/usr/lib/enroot/native/build/Release/enroot_native.node', '/usr/lib/enroot/node_modules/undici/package.json',
    '/usr/share/enroot/spank_enroot.conf', '/usr/share/enroot/hooks.d/98-nvidia-cli.sh',
    '/usr/share/bash-completion/completions/enroot', '/etc/enroot/enroot.conf', '/etc/enroot/enroot.conf.d/README',
    '/etc/enroot/environ.d/10-terminal.env', '/etc/enroot/mounts.d/10-system.fstab', '/etc/enroot/hooks.d/10-home.sh']) {
    t.ok(entries.has(p), `contains ${p}`)
  }
  t.equal(entries.get('/etc/enroot/hooks.d/10-home.sh'), '-rwxr-xr-x', 'hooks are executable')
  t.ok([...entries.keys()].some(p => /^\/usr\/lib\/[a-z0-9_-]+\/slurm-wlm\/spank_enroot\.so$/.test(p)), 'the plugin is in Debian\'s Slurm plugin directory')
  t.notOk([...entries.keys()].some(p => /\/node_modules\/(typescript|tap|@types|node-gyp)\//.test(p)), 'no development packages')
  t.notOk([...entries.keys()].some(p => p.startsWith('/usr/local')), 'nothing under /usr/local')

  const control = userTmp(t, 'enroot-deb-control-')
  execFileSync('dpkg-deb', ['-e', deb, control])
  const conffiles = readFileSync(join(control, 'conffiles'), 'utf8').split('\n').filter(l => l !== '')
  t.same(conffiles, [...entries.entries()].filter(([p, mode]) => p.startsWith('/etc/') && mode.startsWith('-')).map(([p]) => p).sort(),
    'every file under /etc is a conffile')
  const plug = spawnSync('sh', ['-c', `dpkg-deb --fsys-tarfile '${deb}' | tar -xOf - ./usr/share/enroot/spank_enroot.conf`], { encoding: 'utf8' }).stdout
  const lines = plug.split('\n').filter(l => /^[^#\s]/.test(l))
  t.equal(lines.length, 1, 'one plugstack line')
  t.match(lines[0], /^required \/usr\/lib\/[a-z0-9_-]+\/slurm-wlm\/spank_enroot\.so$/)
  // dpkg's own checks (dependencies, conflicts, file clashes) against this machine, without installing;
  // only where node itself is Debian's nodejs package (NodeSource's 20.x here), as the package requires
  const nodejs = spawnSync('dpkg-query', ['-W', '-f=${Version}', 'nodejs'], { encoding: 'utf8' })
  if (IS_ROOT && nodejs.status === 0 && Number(/^(?:\d+:)?(\d+)/.exec(nodejs.stdout)?.[1]) >= 20) {
    const dry = spawnSync('dpkg', ['--dry-run', '-i', deb], { encoding: 'utf8' })
    t.equal(dry.status, 0, 'dpkg --dry-run -i accepts it', { stderr: dry.stderr })
  } else {
    t.comment('dpkg --dry-run skipped: not root, or node is not a nodejs (>= 20) package here')
  }
})

t.test('the unpacked .deb runs from /usr and /etc: version, info, start of a squashfs image', async t => {
  if (!requireFeature(t, 'a built checkout', built, 'run make')) return
  if (!requireFeature(t, 'dpkg-deb, squashfs tools and Slurm headers', haveTools)) return
  if (!requireFeature(t, 'root (to overlay the package on /usr and /etc in a private mount namespace)', IS_ROOT)) return
  const base = userTmp(t, 'enroot-debroot-')
  const deb = await buildDeb()
  const root = join(base, 'root')
  execFileSync('dpkg', ['-x', deb, root])
  const image = busyboxImage(base)
  const u = testUser()
  const env = enrootEnv(base)
  // The package's files appear at their real paths only inside this mount namespace (overlays over the
  // host's /usr and /etc), and the commands run as the test user with the package's /usr/bin/enroot.
  const script = [
    'set -e',
    'command -v enroot',
    'enroot version',
    'enroot info',
    `ENROOT_DEBUG=y enroot start ${image} sh -c 'echo started; id -u' 2> ${base}/start.err`,
    `grep -o 'native: loaded [^ ]*' ${base}/start.err`
  ].join('\n')
  const overlay = `mount -t overlay overlay -o lowerdir=${root}/usr:/usr /usr && mount -t overlay overlay -o lowerdir=${root}/etc:/etc /etc`
  const probe = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', overlay], { encoding: 'utf8' })
  if (!requireFeature(t, 'overlay mounts in a private mount namespace', probe.status === 0, probe.stderr.trim())) return
  const userEnv = Object.entries({ ...env, PATH: '/usr/bin:/bin:/usr/sbin:/sbin' }).map(([k, v]) => `${k}=${v}`)
  const mountThenRun = `${overlay} && exec setpriv --reuid=${u.uid} --regid=${u.gid} --init-groups env -i "$@"`
  const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', mountThenRun, 'sh', ...userEnv, 'sh', '-c', script],
    { cwd: base, encoding: 'utf8', env: cleanEnv() })
  const startErr = existsSync(join(base, 'start.err')) ? readFileSync(join(base, 'start.err'), 'utf8') : ''
  t.equal(r.status, 0, 'all commands succeed', { stderr: r.stderr, stdout: r.stdout, startErr })
  const out = r.stdout
  t.match(out, /^\/usr\/bin\/enroot\n4\.1\.2\n/, 'the package\'s enroot, its version')
  t.match(out, /^Config file: \/etc\/enroot\/enroot\.conf$/m, 'the installed configuration is found')
  t.match(out, /^ {2}ENROOT_SYSCONF_PATH=\/etc\/enroot$/m)
  t.match(out, /^ {2}ENROOT_LIBRARY_PATH=\/usr\/lib\/enroot$/m)
  t.match(out, new RegExp(`^started\n${u.uid}\n`, 'm'), 'the container ran as the test user')
  t.match(out, /^native: loaded \/usr\/lib\/enroot\/native\/build\/Release\/enroot_native\.node$/m, 'the package\'s native addon')
})

t.test('make install honours prefix and sysconfdir; make uninstall removes what it installed', async t => {
  if (!requireFeature(t, 'a built checkout', built, 'run make')) return
  if (!requireFeature(t, 'squashfs tools and Slurm headers', haveTools)) return
  const base = userTmp(t, 'enroot-prefix-')
  const prefix = join(base, 'opt', 'enroot')
  const sysconfdir = join(base, 'etc')
  const vars = [`prefix=${prefix}`, `sysconfdir=${sysconfdir}`, 'NOBUILD=1']
  const make = (target: string): void => { execFileSync('make', ['-s', '-C', REPO, target, ...vars], { env: cleanEnv(), stdio: ['ignore', 'ignore', 'pipe'] }) }
  make('install')

  const enroot = join(prefix, 'bin', 'enroot')
  const env = enrootEnv(join(base, 'user'))
  const info = await runAsUser(enroot, ['info'], { env })
  t.equal(info.status, 0, 'enroot info', { stderr: info.stderr })
  t.match(info.stdout, new RegExp(`^Config file: ${sysconfdir}/enroot/enroot\\.conf$`, 'm'), 'the configuration under sysconfdir is found')
  t.match(info.stdout, new RegExp(`^ {2}ENROOT_LIBRARY_PATH=${prefix}/lib/enroot$`, 'm'))
  t.match(readFileSync(join(sysconfdir, 'enroot', 'enroot.conf'), 'utf8'), `#ENROOT_SYSCONF_PATH        ${sysconfdir}/enroot\n`, 'enroot.conf names the installed paths')
  t.ok(statSync(join(prefix, 'lib', 'slurm', 'spank_enroot.so')).isFile(), 'the plugin under $(libdir)/slurm')
  t.match(execFileSync('strings', [join(prefix, 'lib', 'slurm', 'spank_enroot.so')], { encoding: 'utf8' }), enroot, 'the plugin\'s default launcher is the installed enroot')

  const start = await runAsUser(enroot, ['start', busyboxImage(base), 'sh', '-c', 'echo from-prefix'], { env })
  t.same([start.status, start.stdout], [0, 'from-prefix\n'], 'enroot start', { stderr: start.stderr })

  make('uninstall')
  t.same([...files(prefix), ...files(sysconfdir)], [], 'nothing left behind')
})
