// `enroot import dockerd://` and `podman://` (spec §3.8): the URI and naming rules, the inspect → config
// mapping, Docker without a daemon, and a real import from rootless podman storage as the test user.
import t, { type Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { chownSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync, mkdtempSync, appendFileSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { parseDaemonUri, daemonImportName, inspectToConfig } from '../../launcher/src/image/daemon.js'
import { enrootEnv, userTmp, requireFeature, testUser, runAsUser, IS_ROOT, ENROOT, type RunResult } from '../helpers/env.js'
import { registryAvailable, startRegistry, type TestRegistry } from '../helpers/registry.js'
import { busyboxImage, writeOciLayout, pushLayout } from '../helpers/oci-image.js'
import { tarBuffer } from '../helpers/tar-writer.js'
import { listImage, catImage } from '../helpers/squash-as-user.js'

type T = Parameters<typeof userTmp>[0]

const has = (bin: string): boolean => spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0

async function enroot (args: readonly string[], env: Record<string, string>, cwd: string): Promise<RunResult> {
  return await runAsUser('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, ENROOT, ...args], { env, cwd })
}
const errorLine = (r: RunResult): string => r.stderr.split('\n').find(l => l.startsWith('[ERROR]')) ?? ''

t.test('the URI follows enroot\'s regex; the default name turns ":" and "/" into "+" and adds no tag', async t => {
  t.same(parseDaemonUri('dockerd://nvidia/cuda:11'), { engine: 'docker', image: 'nvidia/cuda:11' })
  t.same(parseDaemonUri('podman://registry.example.com:5000/team/app:v1'), { engine: 'podman', image: 'registry.example.com:5000/team/app:v1' })
  t.equal(daemonImportName('nvidia/cuda:11'), 'nvidia+cuda+11.sqsh')
  t.equal(daemonImportName('busybox'), 'busybox.sqsh')
  for (const bad of ['podman://', 'podman://a b', 'podman://x@sha256:1', 'dockerd://$(id)', 'docker://busybox']) {
    t.throws(() => parseDaemonUri(bad), { code: 'INVALID', message: `Invalid image reference: ${bad}` }, bad)
  }
})

t.test('inspect output with its keys lowercased is the image config', async t => {
  const c = inspectToConfig(JSON.stringify([{ Id: 'x', Architecture: 'amd64', Config: { Env: ['A=1'], Cmd: ['sh'], WorkingDir: '/w' } }]))
  t.same(c.config, { Env: ['A=1'], Cmd: ['sh'], WorkingDir: '/w' })
  t.equal(c.architecture, 'amd64')
  t.throws(() => inspectToConfig('[]'), { code: 'IMAGE' })
  t.throws(() => inspectToConfig('not json'), { code: 'IMAGE' })
})

t.test('dockerd:// without a reachable daemon is one clear error naming the socket', async t => {
  const dir = userTmp(t as unknown as T)
  const env = enrootEnv(dir, { DOCKER_HOST: `unix://${dir}/docker.sock` })
  const r = await enroot(['import', 'dockerd://busybox'], env, dir)
  t.equal(r.status, 1)
  if (has('docker')) {
    t.equal(errorLine(r), `[ERROR] Cannot connect to the Docker daemon at unix://${dir}/docker.sock`, { stderr: r.stderr })
    t.match(r.stderr, 'podman://IMAGE needs no daemon')
  } else {
    t.equal(errorLine(r), '[ERROR] Command not found: docker')
  }
  t.notOk(existsSync(join(dir, 'busybox.sqsh')))
  t.equal(errorLine(await enroot(['import', 'podman://a b'], env, dir)), '[ERROR] Invalid image reference: podman://a b')
})

// --- rootless podman ---------------------------------------------------------------------------------

const avail = registryAvailable()
let reg: TestRegistry | undefined
const regDir = mkdtempSync(join(tmpdir(), 'enroot-daemon-reg-'))

t.before(async () => {
  if (!avail.ok) return
  reg = await startRegistry({ dir: regDir })
  const bb = busyboxImage()
  // .dockerenv and dev/* are left out of the squashfs, as enroot's `tar --exclude` does.
  const extra = tarBuffer([{ name: '.dockerenv', data: '' }, { name: 'dev/', type: 'directory', mode: 0o755 }, { name: 'dev/junk', data: 'x' }, { name: 'srv/hello', data: 'hello\n' }])
  await pushLayout(writeOciLayout(join(regDir, 'bb'), 'v1', {
    ...bb,
    layers: [...bb.layers, { tar: extra, compression: 'gzip' }],
    config: { ...bb.config, Env: ['PATH=/bin', 'FROM_PODMAN=1'], Labels: { origin: 'podman test' } }
  }), reg, 'test/bb:v1')
})
t.teardown(async () => { await reg?.stop(); rmSync(regDir, { recursive: true, force: true }) })

/** Rootless podman needs a subordinate id range for the user; the suite (root) adds one when missing. */
function ensureSubids (name: string): boolean {
  for (const f of ['/etc/subuid', '/etc/subgid']) {
    const text = existsSync(f) ? readFileSync(f, 'utf8') : ''
    if (text.split('\n').some(l => l.startsWith(`${name}:`))) continue
    if (!IS_ROOT) return false
    appendFileSync(f, `${name}:200000:65536\n`)
  }
  return true
}

/** A private podman configuration (storage, run dir, runc) so that the test touches no one's podman state. */
function podmanEnv (dir: string): Record<string, string> {
  const conf = join(dir, 'containers')
  const xdg = join(dir, 'xdg')
  mkdirSync(conf, { recursive: true })
  mkdirSync(xdg, { mode: 0o700, recursive: true })
  if (IS_ROOT) chownSync(xdg, testUser().uid, testUser().gid)
  // crun refuses this host's hybrid cgroups; runc works (doc: slurm-notes). vfs needs no fuse or overlay.
  writeFileSync(join(conf, 'containers.conf'), `[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n`)
  writeFileSync(join(conf, 'storage.conf'), `[storage]\ndriver = "vfs"\ngraphroot = "${dir}/storage"\nrunroot = "${xdg}/containers"\n`)
  return { CONTAINERS_CONF: join(conf, 'containers.conf'), CONTAINERS_STORAGE_CONF: join(conf, 'storage.conf'), XDG_RUNTIME_DIR: xdg }
}

t.test('podman://IMAGE imports from the user\'s rootless podman storage', async t => {
  if (!requireFeature(t, 'the test registry', avail.ok, avail.why) || reg === undefined) return
  if (!requireFeature(t, 'podman', has('podman') && has('runc') && has('newuidmap'), 'apt-get install podman runc uidmap')) return
  if (!requireFeature(t, 'subordinate ids for the test user', ensureSubids(IS_ROOT ? testUser().name : process.env.USER ?? ''))) return
  const dir = userTmp(t as unknown as T)
  const env = enrootEnv(dir, podmanEnv(dir))
  const podman = async (...args: string[]): Promise<RunResult> => await runAsUser('podman', args, { env, cwd: dir })
  // Not a teardown: userTmp's (registered first) would remove the run dir, and the pid file with it.
  try {
    await podmanImport(t, env, podman, dir)
  } finally {
    // Storage written in the user namespace needs it to be removed; then stop the rootless pause process
    // that holds this run dir's namespace (podman leaves it running for the next command).
    await podman('unshare', 'rm', '-rf', join(dir, 'storage'))
    // podman 4.3 puts its pid file in /tmp/podman-run-UID whatever XDG_RUNTIME_DIR says; the process's
    // environment tells whether it is ours.
    const uid = IS_ROOT ? testUser().uid : process.getuid?.() ?? 0
    for (const f of [join(dir, 'xdg', 'libpod', 'tmp', 'pause.pid'), `/tmp/podman-run-${uid}/libpod/tmp/pause.pid`]) {
      const pid = existsSync(f) ? Number(readFileSync(f, 'utf8')) : 0
      let environ = ''
      try { environ = readFileSync(`/proc/${pid}/environ`, 'latin1') } catch {}
      if (environ.includes(`CONTAINERS_CONF=${env.CONTAINERS_CONF ?? ''}\0`)) process.kill(pid, 'SIGKILL')
    }
  }
})

async function podmanImport (t: Test, env: Record<string, string>, podman: (...args: string[]) => Promise<RunResult>, dir: string): Promise<void> {
  if (reg === undefined) return
  const pull = await podman('pull', '--quiet', '--tls-verify=false', `${reg.host}/test/bb:v1`)
  if (!requireFeature(t, 'rootless podman', pull.status === 0, pull.stderr.trim().split('\n').slice(-1)[0])) return
  t.equal((await podman('tag', `${reg.host}/test/bb:v1`, 'busybox')).status, 0)

  const r = await enroot(['import', 'podman://busybox'], env, dir)
  t.equal(r.status, 0, 'exits 0', { stderr: r.stderr })
  const out = join(dir, 'busybox.sqsh')
  t.ok(existsSync(out), 'default name')
  const files = await listImage(out)
  t.ok(files.has('/bin/busybox'))
  t.ok(files.has('/srv/hello'))
  t.notOk(files.has('/.dockerenv'), '.dockerenv left out')
  t.notOk(files.has('/dev/junk'), 'dev/* left out')
  const rc = await catImage(out, '/etc/rc')
  t.ok(rc.startsWith('# enroot-provenance: podman://busybox\n# origin podman test\n'), rc.split('\n')[0])
  t.equal(await catImage(out, '/etc/environment'), 'PATH=/bin\nFROM_PODMAN=1\n')
  t.equal(await catImage(out, '/srv/hello'), 'hello\n')

  const ps = await podman('ps', '-a', '--format', '{{.Names}}')
  t.equal(ps.stdout.trim(), '', 'the temporary container is removed with podman itself')
  const again = await enroot(['import', 'podman://busybox'], env, dir)
  t.same([again.status, errorLine(again)], [1, `[ERROR] File already exists: ${out}`])
  const missing = await enroot(['import', '-o', 'x.sqsh', 'podman://localhost/nope:1'], env, dir)
  t.equal(missing.status, 1)
  t.match(errorLine(missing), /^\[ERROR\] podman create failed: /)
  t.notOk(existsSync(join(dir, 'x.sqsh')))
}
