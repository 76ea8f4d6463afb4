// container_scope=job: the job epilog (a separate slurmstepd per node, root, no job environment) runs
// `launcher slurm-epilog --job-id=J --scope=job` as the job's user on every node of the job. slurmd
// decides at start whether plugins have an epilog, so this cluster starts with the plugstack in place.
import t from 'tap'
import { copyFileSync, chmodSync, chownSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { buildShim, startCluster, clusterUnavailableReason, type Cluster } from '../helpers/slurm-cluster.js'
import { requireFeature, testUser, REPO } from '../helpers/env.js'

const why = clusterUnavailableReason()
if (requireFeature(t, 'Slurm cluster', why === undefined, why)) {
  let cluster: Cluster
  let out: string
  t.before(async () => {
    const so = buildShim()
    // The launcher path must exist before the cluster does; the epilog has no job env, so the stand-in
    // writes where the wrapper below tells it.
    const u = testUser()
    const base = join('/tmp', `enroot-epilog-${process.pid}`)
    out = join(base, 'rec')
    mkdirSync(out, { recursive: true })
    chmodSync(base, 0o755)
    chownSync(out, u.uid, u.gid)
    const launcher = join(base, 'launcher.sh')
    copyFileSync(join(REPO, 'test', 'slurm', 'fixtures', 'recording-launcher.sh'), join(base, 'recording-launcher.sh'))
    chmodSync(join(base, 'recording-launcher.sh'), 0o755)
    writeFileSync(launcher, `#!/bin/sh\nFAKE_RECORD_DIR=${out} exec ${join(base, 'recording-launcher.sh')} "$@"\n`, { mode: 0o755 })
    cluster = await startCluster({ nodes: 2, plugstack: `required ${so} launcher=${launcher} container_scope=job\n` })
    t.teardown(() => { rmSync(base, { recursive: true, force: true }) })
  })
  t.teardown(async () => { await cluster?.stop() })

  t.test('every node of the job runs the epilog launcher as the job user, once the job ends', async t => {
    const r = await cluster.srun(['-N2', 'true'])
    t.equal(r.status, 0, r.stderr)
    const deadline = Date.now() + 10_000
    let files: string[] = []
    while (Date.now() < deadline) {
      files = readdirSync(out).filter(f => f.endsWith('.slurm-epilog.argv')).sort()
      // the recording launcher writes argv first and its ids next: wait for both
      const complete = files.every(f => { try { return readFileSync(join(out, f.replace('.argv', '.id')), 'utf8').includes('gid=') } catch { return false } })
      if (files.length === 2 && complete) break
      await new Promise(resolve => setTimeout(resolve, 100))
    }
    t.same(files.map(f => f.split('.')[0]), ['node1', 'node2'])
    const u = testUser()
    for (const f of files) {
      const argv = readFileSync(join(out, f), 'utf8').trim().split('\n')
      t.equal(argv[0], 'slurm-epilog')
      t.ok(argv.some(a => /^--job-id=\d+$/.test(a)) && argv.includes('--scope=job'), argv.join(' '))
      const id = readFileSync(join(out, f.replace('.argv', '.id')), 'utf8')
      t.match(id, `uid=${u.uid} gid=${u.gid}`)
    }
  })
}
