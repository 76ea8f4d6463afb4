// The suite's Slurm cluster itself: nodes are distinct hosts with their own local scratch, jobs run as the test user.
import t from 'tap'
import { readdirSync } from 'node:fs'
import { startCluster, clusterUnavailableReason, NODE_LOCAL, type Cluster } from '../helpers/slurm-cluster.js'
import { requireFeature, testUser } from '../helpers/env.js'

const why = clusterUnavailableReason()
if (requireFeature(t, 'Slurm cluster', why === undefined, why)) {
  let cluster: Cluster
  t.before(async () => { cluster = await startCluster() })
  t.teardown(async () => { await cluster?.stop() })

  t.test('srun -N3 runs one task per node, as the test user, on distinct hostnames', async t => {
    const r = await cluster.srun(['-N3', 'sh', '-c', 'echo $(hostname) $(id -u)'])
    t.equal(r.status, 0, r.stderr)
    const u = testUser()
    t.same(r.stdout.trim().split('\n').sort(), ['node1', 'node2', 'node3'].map(n => `${n} ${u.uid}`))
  })

  t.test('each node has its own node-local scratch directory', async t => {
    const r = await cluster.srun(['-N3', 'sh', '-c', `touch ${NODE_LOCAL}/mark-$(hostname)`])
    t.equal(r.status, 0, r.stderr)
    for (const n of cluster.nodeNames) t.same(readdirSync(cluster.nodeLocal(n)), [`mark-${n}`])
  })

  t.test('the shared directory is visible from every node', async t => {
    const r = await cluster.srun(['-N3', 'sh', '-c', `echo x > ${cluster.shared}/f-$(hostname); ls ${cluster.shared} | wc -l`])
    t.equal(r.status, 0, r.stderr)
    t.same(readdirSync(cluster.shared).sort(), ['f-node1', 'f-node2', 'f-node3'])
  })
}
