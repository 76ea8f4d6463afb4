// The container options end to end through real srun and sbatch, as the test user, with a registry image
// on the suite's 3-node cluster (pyxis's tests: batch, save/reuse, per-task variables, mounts and escapes,
// entrypoint, remap-root, writable/readonly, unshare, names across steps). Each step must leave nothing
// behind in node-local scratch or the runtime directory.
import t from 'tap'
import { chownSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { buildShim, startCluster, clusterUnavailableReason, NODE_LOCAL, type Cluster } from '../helpers/slurm-cluster.js'
import { startRegistry, registryAvailable, type TestRegistry } from '../helpers/registry.js'
import { busyboxImage, writeOciLayout, pushLayout, BUSYBOX_ENV } from '../helpers/oci-image.js'
import { requireFeature, testUser, REPO, ENROOT } from '../helpers/env.js'

const why = clusterUnavailableReason()
const reg = registryAvailable()
const built = existsSync(join(REPO, 'dist', 'cli.js'))

if (requireFeature(t, 'Slurm cluster', why === undefined, why) &&
    requireFeature(t, 'the test registry', reg.ok, reg.why) &&
    requireFeature(t, 'the built launcher (npm run build)', built)) {
  let cluster: Cluster
  let registry: TestRegistry
  const user = testUser()
  const env = { XDG_RUNTIME_DIR: `${NODE_LOCAL}/run`, XDG_DATA_HOME: `${NODE_LOCAL}/data`, XDG_CACHE_HOME: `${NODE_LOCAL}/cache`, TMPDIR: `${NODE_LOCAL}/tmp` }
  let image: string
  let entry: string
  let so: string

  t.before(async () => {
    so = buildShim()
    cluster = await startCluster()
    cluster.setPlugstack(`required ${so} launcher=${ENROOT} runtime_path=${NODE_LOCAL}/pyxis allow_http=1\n`)
    registry = await startRegistry({ dir: join(cluster.dir, 'registry') })
    await pushLayout(writeOciLayout(join(cluster.dir, 'oci-busybox'), 'latest', busyboxImage()), registry, 'busybox:latest')
    // An entrypoint that leaves a trace and runs the command (as images' entrypoint scripts do).
    await pushLayout(writeOciLayout(join(cluster.dir, 'oci-entry'), 'latest', busyboxImage({
      config: { Env: BUSYBOX_ENV, Entrypoint: ['/bin/sh', '-c', 'echo ran > /tmp/entrypoint-ran; exec "$@"', '--'], Cmd: ['sh'] }
    })), registry, 'entry:latest')
    image = `${registry.host}#busybox`
    entry = `${registry.host}#entry`
    const r = await cluster.srun(['-N3', 'mkdir', '-p', `${NODE_LOCAL}/data/enroot`, `${NODE_LOCAL}/run`, `${NODE_LOCAL}/cache`, `${NODE_LOCAL}/tmp`])
    if (r.status !== 0) throw new Error(r.stderr)
  })
  t.teardown(async () => { await registry?.stop(); await cluster?.stop() })

  const leftovers = (): string[] => cluster.nodeNames.flatMap(node => {
    const local = cluster.nodeLocal(node)
    const ls = (rel: string): string[] => { try { return readdirSync(join(local, rel)).map(n => `${node}:${rel}/${n}`) } catch { return [] } }
    return [...ls(`pyxis/${user.uid}`), ...ls('run/enroot'), ...ls('tmp'), ...ls('data/enroot').filter(p => /\/pyxis_\d/.test(p))]
  })
  const lines = (s: string): string[] => s.trim().split('\n').filter(l => l !== '').sort()

  t.test('3 nodes x 2 tasks: one container per node, every task keeps its own rank', async t => {
    const r = await cluster.srun(['-N3', '-n6', '--ntasks-per-node=2', `--container-image=${image}`,
      'sh', '-c', 'echo $(hostname) $SLURM_PROCID $SLURM_LOCALID $(readlink /proc/self/ns/mnt)'], { env })
    t.equal(r.status, 0, r.stderr)
    const rows = lines(r.stdout).map(l => l.split(' '))
    t.same(rows.map(f => f[1]).sort(), ['0', '1', '2', '3', '4', '5'], 'SLURM_PROCID distinct')
    for (const node of cluster.nodeNames) {
      const mine = rows.filter(f => f[0] === node)
      t.same(mine.map(f => f[2]).sort(), ['0', '1'], `${node}: SLURM_LOCALID 0 and 1`)
      t.equal(new Set(mine.map(f => f[3])).size, 1, `${node}: both tasks in the same container`)
    }
    t.same(leftovers(), [])
  })

  t.test('exit codes, signals, stdout/stderr, stdin and the working directory behave as without a container', async t => {
    const cases: string[][] = [['sh', '-c', 'echo out; echo err >&2; exit 3'], ['sh', '-c', 'kill -TERM $$'], ['sh', '-c', 'kill -KILL $$']]
    for (const cmd of cases) {
      const bare = await cluster.srun(['-N1', ...cmd], { env })
      const boxed = await cluster.srun(['-N1', `--container-image=${image}`, ...cmd], { env })
      t.equal(boxed.status, bare.status, `status of ${cmd.join(' ')} (${String(bare.status)})`)
      t.equal(boxed.stdout, bare.stdout, 'stdout')
      t.equal(boxed.stderr.includes('err'), bare.stderr.includes('err'), 'stderr')
    }
    const piped = await cluster.client('sh', ['-c', `echo piped | srun -N1 --container-image=${image} cat`], { env })
    t.equal(piped.stdout, 'piped\n', piped.stderr)
    const cwd = await cluster.srun(['-N1', `--container-image=${image}`, 'pwd'], { env })
    t.equal(cwd.stdout, '/\n', 'the image WORKDIR (busybox: none, so /), as pyxis')
    const wd = await cluster.srun(['-N1', `--container-image=${image}`, '--container-workdir=/tmp', 'pwd'], { env })
    t.equal(wd.stdout, '/tmp\n')
    t.same(leftovers(), [])
  })

  t.test('sbatch: #SBATCH --container-image runs the batch script in the container', async t => {
    const script = join(cluster.shared, 'job.sh')
    writeFileSync(script, `#!/bin/sh\n#SBATCH --container-image=${image.replace('#', '\\#')}\n#SBATCH -o ${cluster.shared}/job.out\n` +
      'if [ -e /etc/debian_version ]; then echo on-host; else echo in-container $(readlink /bin/sh); fi\n', { mode: 0o755 })
    chownSync(script, user.uid, user.gid)
    const r = await cluster.sbatch(['--wait', script], { env })
    t.equal(r.status, 0, r.stderr)
    // (slurmstepd's own complaint about the job's TMPDIR, which the image lacks, may come first)
    t.equal(readFileSync(join(cluster.shared, 'job.out'), 'utf8').trim().split('\n').pop(), 'in-container busybox')
  })

  t.test('--container-save, then the saved file as --container-image on every node', async t => {
    const saved = join(cluster.shared, 'saved.sqsh')
    const r = await cluster.srun(['-N1', `--container-image=${image}`, '--container-writable', `--container-save=${saved}`, 'sh', '-c', 'echo kept > /etc/saved-marker'], { env })
    t.equal(r.status, 0, r.stderr)
    t.ok(existsSync(saved), r.stderr)
    const reuse = await cluster.srun(['-N3', `--container-image=${saved}`, 'cat', '/etc/saved-marker'], { env })
    t.equal(reuse.status, 0, reuse.stderr)
    t.same(lines(reuse.stdout), ['kept', 'kept', 'kept'])
    t.same(leftovers(), [])
  })

  t.test('--container-mounts: read-only binds work, escapes are refused', async t => {
    const data = join(cluster.shared, 'data')
    mkdirSync(data)
    writeFileSync(join(data, 'in.txt'), 'from the host\n')
    chownSync(data, user.uid, user.gid)
    const r = await cluster.srun(['-N2', `--container-image=${image}`, `--container-mounts=${data}:/data:ro`, 'sh', '-c', 'cat /data/in.txt; touch /data/x 2>/dev/null && echo writable || echo read-only'], { env })
    t.equal(r.status, 0, r.stderr)
    t.same(lines(r.stdout), ['from the host', 'from the host', 'read-only', 'read-only'])
    const esc = await cluster.srun(['-N1', `--container-image=${image}`, `--container-mounts=${data}:../../escape`, 'true'], { env })
    t.not(esc.status, 0)
    t.match(esc.stderr, /enroot: .*(Invalid cross-device link|escape)/i, 'one clear line')
    t.same(leftovers(), [])
  })

  t.test('entrypoint: run with --container-entrypoint, skipped with --no-container-entrypoint', async t => {
    const on = await cluster.srun(['-N1', `--container-image=${entry}`, '--container-entrypoint', 'sh', '-c', 'cat /tmp/entrypoint-ran 2>/dev/null || echo absent'], { env })
    t.equal(on.status, 0, on.stderr)
    t.equal(on.stdout.trim(), 'ran')
    const off = await cluster.srun(['-N1', `--container-image=${entry}`, '--no-container-entrypoint', 'sh', '-c', 'cat /tmp/entrypoint-ran 2>/dev/null || echo absent'], { env })
    t.equal(off.status, 0, off.stderr)
    t.equal(off.stdout.trim(), 'absent')
  })

  t.test('remap-root, writable and read-only', async t => {
    const root = await cluster.srun(['-N1', `--container-image=${image}`, '--container-remap-root', 'id', '-u'], { env })
    t.equal(root.stdout.trim(), '0', root.stderr)
    const plain = await cluster.srun(['-N1', `--container-image=${image}`, '--no-container-remap-root', 'id', '-u'], { env })
    t.equal(plain.stdout.trim(), String(user.uid), plain.stderr)
    const rw = await cluster.srun(['-N1', `--container-image=${image}`, '--container-writable', 'sh', '-c', 'touch /etc/new && echo wrote'], { env })
    t.equal(rw.stdout.trim(), 'wrote', rw.stderr)
    const ro = await cluster.srun(['-N1', `--container-image=${image}`, '--container-readonly', 'sh', '-c', 'touch /etc/new 2>/dev/null && echo wrote || echo refused'], { env })
    t.equal(ro.stdout.trim(), 'refused', ro.stderr)
    t.same(leftovers(), [])
  })

  t.test('--container-unshare=net: only loopback inside', async t => {
    const shared = await cluster.srun(['-N1', `--container-image=${image}`, 'ls', '/sys/class/net'], { env })
    t.equal(shared.status, 0, shared.stderr)
    const own = await cluster.srun(['-N1', `--container-image=${image}`, '--container-unshare=net', 'ls', '/sys/class/net'], { env })
    t.equal(own.status, 0, own.stderr)
    t.equal(own.stdout.trim(), 'lo')
    t.ok(lines(shared.stdout).length >= 1)
  })

  t.test('use_squashfuse=0: the root filesystem is extracted to node-local scratch and removed at step end', async t => {
    cluster.setPlugstack(`required ${so} launcher=${ENROOT} runtime_path=${NODE_LOCAL}/pyxis allow_http=1 use_squashfuse=0\n`)
    t.teardown(() => { cluster.setPlugstack(`required ${so} launcher=${ENROOT} runtime_path=${NODE_LOCAL}/pyxis allow_http=1\n`) })
    const r = await cluster.srun(['-N3', `--container-image=${image}`, '--container-writable', 'sh', '-c', 'touch /etc/x && grep -c " / " /proc/mounts >/dev/null && echo $(hostname)'], { env })
    t.equal(r.status, 0, r.stderr)
    t.same(lines(r.stdout), cluster.nodeNames)
    t.same(leftovers(), [], 'the extracted rootfs is gone from every node')
  })

  t.test('a named container keeps its changes across steps on every node', async t => {
    const first = await cluster.srun(['-N3', `--container-image=${image}`, '--container-name=reuse', '--container-writable', 'sh', '-c', 'echo $(hostname) > /etc/first-step'], { env })
    t.equal(first.status, 0, first.stderr)
    const second = await cluster.srun(['-N3', '--container-name=reuse', 'cat', '/etc/first-step'], { env })
    t.equal(second.status, 0, second.stderr)
    t.same(lines(second.stdout), cluster.nodeNames)
    t.same(leftovers(), [])
  })
}
