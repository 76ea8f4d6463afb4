// The step protocol end to end on the suite's cluster, with a stand-in launcher that starts a tiny
// "container" (new user, mount and UTS namespaces; hostname ctr-<node>; cwd /var/tmp; an environment
// of its own) and answers READY <pid>. Proves the shim's half: every task joins that process's
// namespaces, gets its cwd and environment while keeping its own per-task variables, runs under the
// fake-root seccomp filter, and the step's last task tears down (doc/slurm.md).
import t from 'tap'
import { copyFileSync, chmodSync, readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { execFileSync } from 'node:child_process'
import { buildShim, recordingDir, startCluster, clusterUnavailableReason, type Cluster } from '../helpers/slurm-cluster.js'
import { requireFeature, testUser, REPO } from '../helpers/env.js'

function userNamespaces (): boolean {
  try {
    execFileSync('runuser', ['-u', testUser().name, '--', 'unshare', '--user', '--map-root-user', '--mount', '--uts', 'true'], { stdio: 'ignore' })
    return true
  } catch { return false }
}

const why = clusterUnavailableReason()
if (requireFeature(t, 'Slurm cluster', why === undefined, why) && requireFeature(t, 'unprivileged user namespaces', userNamespaces())) {
  let cluster: Cluster
  t.before(async () => {
    const so = buildShim()
    cluster = await startCluster()
    const launcher = join(cluster.shared, 'container-launcher.sh')
    copyFileSync(join(REPO, 'test', 'slurm', 'fixtures', 'container-launcher.sh'), launcher)
    chmodSync(launcher, 0o755)
    cluster.setPlugstack(`required ${so} launcher=${launcher}\n`)
  })
  t.teardown(async () => { await cluster?.stop() })

  const recorder = (): { dir: string, env: Record<string, string> } => recordingDir(cluster)
  const PROBE = 'echo "$(hostname) $SLURM_PROCID $SLURM_LOCALID $(id -u) $(pwd) ${FROM_IMAGE-} ${LANG-unset} ${CUDA_VISIBLE_DEVICES-unset} $(grep Seccomp: /proc/self/status | tr -d "\\t ")"'

  t.test('every task of srun -N3 -n6 joins its node\'s container and keeps its own rank', async t => {
    const rec = recorder()
    const r = await cluster.srun(['-N3', '-n6', '--container-image=fake', 'sh', '-c', PROBE], { env: { ...rec.env, CUDA_VISIBLE_DEVICES: '0' } })
    t.equal(r.status, 0, r.stderr)
    const rows = r.stdout.trim().split('\n').map(l => l.split(' '))
    t.equal(rows.length, 6)
    t.same(rows.map(f => f[1]).sort(), ['0', '1', '2', '3', '4', '5'], 'SLURM_PROCID is each task\'s own, not the container\'s 999')
    t.same([...new Set(rows.map(f => f[0]))].sort(), ['ctr-node1', 'ctr-node2', 'ctr-node3'], 'UTS namespace joined, one container per node')
    for (const f of rows) {
      t.equal(f[3], '0', 'remapped root inside the user namespace')
      t.equal(f[4], '/var/tmp', 'cwd of the container process')
      t.equal(f[5], 'yes', 'the container environment is imported')
      t.equal(f[6], 'C.UTF-8', 'the container\'s LANG wins over the host\'s')
      t.equal(f[7], '0', 'CUDA_VISIBLE_DEVICES stays the task\'s own')
      t.equal(f[8], 'Seccomp:2', 'the fake-root seccomp filter is installed')
    }
  })

  t.test('--container-workdir wins over the container cwd; the host value of --container-env wins', async t => {
    const rec = recorder()
    const r = await cluster.srun(['-N1', '--container-image=fake', '--container-workdir=/tmp', '--container-env=FROM_IMAGE', 'sh', '-c', 'echo $(pwd) $FROM_IMAGE'],
      { env: { ...rec.env, FROM_IMAGE: 'host' } })
    t.equal(r.status, 0, r.stderr)
    t.equal(r.stdout.trim(), '/tmp host')
  })

  t.test('a bad --container-workdir fails the task with pyxis\'s message', async t => {
    const r = await cluster.srun(['-N1', '--container-image=fake', '--container-workdir=/nonexistent', 'true'], { env: recorder().env })
    t.not(r.status, 0)
    t.match(r.stderr, /enroot: couldn't chdir to \/nonexistent: No such file or directory/)
  })

  t.test('the last task on each node tears down: container killed, launcher told once (only when there is work)', async t => {
    const rec = recorder()
    const r = await cluster.srun(['-N2', '-n4', '--container-image=fake', `--container-save=${rec.dir}/saved.sqsh`, 'true'], { env: rec.env })
    t.equal(r.status, 0, r.stderr)
    const teardowns = readdirSync(rec.dir).filter(f => f.endsWith('.slurm-teardown.argv')).sort()
    t.equal(teardowns.length, 2, 'one teardown per node')
    for (const f of teardowns) {
      const argv = readFileSync(join(rec.dir, f), 'utf8').split('\n')
      t.ok(argv.includes('--all-started=y'), 'every local task joined')
      t.ok(argv.some(a => /^--pid=\d+$/.test(a)))
      t.ok(argv.includes('container-gone'), 'the container process was killed before teardown')
    }
    // Without --container-save the supervising launcher cleans up itself: no teardown process at all.
    const rec2 = recorder()
    const r2 = await cluster.srun(['-N2', '--container-image=fake', 'true'], { env: rec2.env })
    t.equal(r2.status, 0, r2.stderr)
    t.same(readdirSync(rec2.dir).filter(f => f.endsWith('.slurm-teardown.argv')), [])
  })
}
