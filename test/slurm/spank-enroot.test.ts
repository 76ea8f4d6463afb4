// The real thing: spank_enroot.so with the real per-node launcher (bin/enroot slurm-launch) on the
// suite's 3-node cluster, starting a busybox squashfs image. Container storage is node-local (XDG_* in
// the job environment point enroot at /var/tmp/enroot-node-local, each node's own directory).
import t from 'tap'
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync, copyFileSync, rmSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { buildShim, startCluster, clusterUnavailableReason, NODE_LOCAL, type Cluster } from '../helpers/slurm-cluster.js'
import { requireFeature, REPO, ENROOT, testUser } from '../helpers/env.js'
import { until, pidsWith } from '../helpers/procs.js'

const have = (cmd: string): boolean => { try { execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }); return true } catch { return false } }
const why = clusterUnavailableReason()
const built = existsSync(join(REPO, 'dist', 'cli.js'))

if (requireFeature(t, 'Slurm cluster', why === undefined, why) &&
    requireFeature(t, 'mksquashfs and busybox', have('mksquashfs') && have('busybox')) &&
    requireFeature(t, 'the built launcher (npm run build)', built)) {
  let cluster: Cluster
  let image: string
  const env = { XDG_RUNTIME_DIR: `${NODE_LOCAL}/run`, XDG_DATA_HOME: `${NODE_LOCAL}/data`, XDG_CACHE_HOME: `${NODE_LOCAL}/cache` }

  t.before(async () => {
    const so = buildShim()
    // In place from the start: slurmd decides at its start whether a plugin has a job epilog (which ends
    // the jobs' launcher services).
    cluster = await startCluster({ plugstack: `required ${so} launcher=${ENROOT} runtime_path=${NODE_LOCAL}/pyxis\n` })
    // A busybox image: enough for sh -c and the probes below.
    const root = join(cluster.dir, 'rootfs')
    for (const d of ['bin', 'etc', 'tmp', 'proc', 'dev', 'sys', 'root', 'home', 'run']) mkdirSync(join(root, d), { recursive: true })
    copyFileSync(execFileSync('sh', ['-c', 'command -v busybox'], { encoding: 'utf8' }).trim(), join(root, 'bin', 'busybox'))
    chmodSync(join(root, 'bin', 'busybox'), 0o755)
    for (const c of ['sh', 'hostname', 'id', 'pwd', 'cat', 'ls', 'readlink', 'echo', 'grep', 'true', 'sleep', 'touch']) symlinkSync('busybox', join(root, 'bin', c))
    writeFileSync(join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n')
    writeFileSync(join(root, 'etc', 'image-marker'), 'busybox-test-image\n')
    image = join(cluster.shared, 'busybox.sqsh')
    execFileSync('mksquashfs', [root, image, '-quiet', '-noappend', '-all-root'], { stdio: 'ignore' })
    chmodSync(image, 0o644)
    rmSync(root, { recursive: true, force: true })
    // enroot's storage on every node (node-local scratch).
    const r = await cluster.srun(['-N3', 'mkdir', '-p', `${NODE_LOCAL}/data/enroot`, `${NODE_LOCAL}/run`, `${NODE_LOCAL}/cache`])
    if (r.status !== 0) throw new Error(r.stderr)
  })
  t.teardown(async () => { await cluster?.stop() })

  const containersOn = (node: string): string[] => {
    try { return readdirSync(join(cluster.nodeLocal(node), 'data', 'enroot')) } catch { return [] }
  }

  t.test('srun -N3 --container-image=IMAGE hostname prints node1..node3, from inside the image', async t => {
    const r = await cluster.srun(['-N3', `--container-image=${image}`, 'sh', '-c', 'echo $(hostname) $(cat /etc/image-marker) $(readlink /bin/sh)'], { env })
    t.equal(r.status, 0, r.stderr)
    t.same(r.stdout.trim().split('\n').sort(), ['node1', 'node2', 'node3'].map(n => `${n} busybox-test-image busybox`))
    for (const n of cluster.nodeNames) t.same(containersOn(n), [], `${n}: the unnamed container was removed`)
  })

  t.test('a job\'s later steps on a node go to its launcher service; the job\'s end stops the service', async t => {
    // The launcher through a wrapper that counts its executions per node: a step served by the service
    // executes no launcher at all.
    const count = join(cluster.shared, 'launches')
    mkdirSync(count, { recursive: true })
    chmodSync(count, 0o777)
    const wrapper = join(cluster.shared, 'counting-launcher.sh')
    writeFileSync(wrapper, `#!/bin/sh\necho "$1" >> ${count}/$(hostname)\nexec ${process.execPath} ${ENROOT} "$@"\n`, { mode: 0o755 })
    cluster.setPlugstack(`required ${buildShim()} launcher=${wrapper} runtime_path=${NODE_LOCAL}/pyxis\n`)
    t.teardown(() => { cluster.setPlugstack(`required ${buildShim()} launcher=${ENROOT} runtime_path=${NODE_LOCAL}/pyxis\n`) })
    const alloc = await cluster.client('salloc', ['-N3', '--no-shell'], { timeoutMs: 30_000 })
    const job = /Granted job allocation (\d+)/.exec(alloc.stderr)?.[1]
    if (job === undefined) { t.fail(`salloc: ${alloc.stderr}`); return }
    const socket = (node: string): string => join(cluster.nodeLocal(node), 'pyxis', String(testUser().uid), `service.${job}.sock`)
    const launches = (): string[] => cluster.nodeNames.flatMap(n => { try { return readFileSync(join(count, n), 'utf8').trim().split('\n').map(v => `${n} ${v}`) } catch { return [] } })
    try {
      const step = async (cmd: string[]): Promise<string[]> => {
        const r = await cluster.srun([`--jobid=${job}`, '-N3', `--container-image=${image}`, ...cmd], { env })
        t.equal(r.status, 0, r.stderr)
        return r.stdout.trim().split('\n').sort()
      }
      await step(['true'])
      t.same(launches().sort(), cluster.nodeNames.map(n => `${n} slurm-launch`), 'the first step executes the launcher on each node')
      t.notOk(cluster.nodeNames.some(n => existsSync(socket(n))), 'and starts no service: a job may have one step only')
      await step(['true'])
      t.equal(launches().length, 6, 'the second step executes the launcher too')
      t.ok(await until(() => cluster.nodeNames.every(n => existsSync(socket(n)))), 'which starts the job\'s service on each node')
      t.same(await step(['sh', '-c', 'echo $(hostname) $SLURM_STEP_ID $(cat /etc/image-marker)']),
        cluster.nodeNames.map(n => `${n} 2 busybox-test-image`), 'the third step runs in the image, with its own step id')
      t.same(await step(['sh', '-c', 'echo $(hostname) $SLURM_PROCID']), ['node1 0', 'node2 1', 'node3 2'])
      t.equal(launches().length, 6, 'and no launcher was executed for the later steps')
      for (const n of cluster.nodeNames) t.same(containersOn(n), [], `${n}: the service removed the unnamed containers`)
      // A service gone without its socket's removal (killed): the next step runs its own launcher again.
      for (const pid of pidsWith(`service.${job}.sock`)) process.kill(pid, 'SIGKILL')
      t.ok(await until(() => pidsWith(`service.${job}.sock`).length === 0))
      t.same(await step(['hostname']), cluster.nodeNames, 'a stale socket only means a launcher of its own')
      t.equal(launches().length, 9)
      t.ok(await until(() => pidsWith(`service.${job}.sock`).length === 3), 'which starts a service again')
    } finally {
      await cluster.client('scancel', [job])
    }
    t.ok(await until(() => pidsWith(`service.${job}.sock`).length === 0), 'the job\'s epilog ends its services')
    t.ok(await until(() => cluster.nodeNames.every(n => !existsSync(socket(n)))), 'and their sockets are gone')
  })

  t.test('several tasks per node share one container and keep their own ranks', async t => {
    const r = await cluster.srun(['-N2', '-n5', `--container-image=${image}`, '--container-workdir=/tmp', '--container-remap-root',
      'sh', '-c', 'echo $SLURM_PROCID $(pwd) $(id -u) $(grep Seccomp: /proc/self/status | tr -d "\\t ")'], { env })
    t.equal(r.status, 0, r.stderr)
    t.same(r.stdout.trim().split('\n').sort(), ['0', '1', '2', '3', '4'].map(i => `${i} /tmp 0 Seccomp:2`))
  })

  t.test('named containers persist on each node and honour create/exec flags', async t => {
    const r = await cluster.srun(['-N2', '-w', 'node[1-2]', `--container-image=${image}`, '--container-name=keep', 'true'], { env })
    t.equal(r.status, 0, r.stderr)
    t.same(containersOn('node1'), ['pyxis_keep'])
    t.same(containersOn('node2'), ['pyxis_keep'])
    const again = await cluster.srun(['-N1', '-w', 'node1', '--container-name=keep:create', 'true'], { env })
    t.not(again.status, 0)
    t.match(again.stderr, /enroot: error: "create" flag was passed to --container-name but the container already exists/)
    const exec = await cluster.srun(['-N1', '-w', 'node1', '--container-name=keep:exec', 'true'], { env })
    t.not(exec.status, 0)
    t.match(exec.stderr, /enroot: error: "exec" flag was passed to --container-name but the container is not running/)
    const reuse = await cluster.srun(['-N1', '-w', 'node1', '--container-name=keep', 'cat', '/etc/image-marker'], { env })
    t.equal(reuse.status, 0, reuse.stderr)
    t.equal(reuse.stdout, 'busybox-test-image\n')
    const missing = await cluster.srun(['-N1', '-w', 'node3', '--container-name=nothere', 'true'], { env })
    t.match(missing.stderr, /enroot: error: a container with name "pyxis_nothere" does not exist, and --container-image is not set/)
  })

  t.test('a step attaches to a running named container (name:exec) and leaves it running', async t => {
    const first = cluster.srun(['-N1', '-w', 'node1', `--container-image=${image}`, '--container-name=live', 'sh', '-c', 'touch /tmp/from-first; sleep 4'], { env })
    let attached: Awaited<ReturnType<Cluster['srun']>> | undefined
    for (let i = 0; i < 40; i++) {
      await new Promise(resolve => setTimeout(resolve, 250))
      attached = await cluster.srun(['-N1', '-w', 'node1', '--container-name=live:exec', 'ls', '/tmp/from-first'], { env })
      if (attached.status === 0) break
    }
    t.equal(attached?.status, 0, attached?.stderr ?? '')
    t.equal(attached?.stdout, '/tmp/from-first\n', 'the second step sees the first one\'s private /tmp: same mount namespace')
    const r = await first
    t.equal(r.status, 0, `the first step was not disturbed: ${r.stderr}`)
  })

    t.test('--container-mounts and --container-save reach enroot', async t => {
    writeFileSync(join(cluster.shared, 'hello.txt'), 'hello from the shared fs\n')
    const save = join(cluster.shared, 'saved.sqsh')
    const r = await cluster.srun(['-N1', `--container-image=${image}`, `--container-mounts=${cluster.shared}:/data:ro`, `--container-save=${save}`,
      'cat', '/data/hello.txt'], { env })
    t.equal(r.status, 0, r.stderr)
    t.equal(r.stdout, 'hello from the shared fs\n')
    t.ok(existsSync(save), 'the container was exported')
  })

    t.test('a missing image fails the step with one clear line per node', async t => {
    const r = await cluster.srun(['-N2', '--container-image=/nonexistent.sqsh', 'true'], { env })
    t.not(r.status, 0)
    t.equal(r.stderr.split('\n').filter(l => /enroot: failed to create container filesystem for image: \/nonexistent\.sqsh$/.test(l)).length, 2, r.stderr)
  })
}
