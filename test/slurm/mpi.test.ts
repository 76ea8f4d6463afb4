// MPI through the shim (issue D): `srun --mpi=pmix -N3 -n3 --container-image=<image> /app/allreduce` on the
// suite's 3-node cluster, with Slurm's mpi/pmix_v4 plugin as the PMIx server, the 50-slurm-pmi extra hook
// linked into the system hooks.d, and an image holding Open MPI + PMIx (test/helpers/mpi-image.ts). Every
// rank must finish MPI_Allreduce: that needs each task's own PMIX_RANK (not the first task's), the PMIx
// server's directory (its shared-memory dstore) inside the container, and the PMIX_* variables.
//
// Two things belong to this one-machine cluster only:
// - The slurmds share /tmp, and the plugin creates /tmp/spmix_appdir_<uid>_<job>.<step> on every node:
//   the second node fails with EEXIST. SLURM_PMIX_TMPDIR (read from the job environment) moves it to the
//   node-local directory, as a real node's own /tmp would be.
// - The system configuration: an administrator links 50-slurm-pmi.sh into /etc/enroot/hooks.d. The shim
//   never passes ENROOT_SYSCONF_PATH from the job to the launcher (deny list), so the plugstack's
//   launcher= is a two-line wrapper that sets it, pointing at a copy of the checkout's etc/ with the
//   extra hook linked in: the same built-in hook a site enables, without touching the shared checkout.
import t from 'tap'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { pmixStepDirs, slurmPmi } from '../../launcher/src/pipeline/builtin-hooks/slurm-pmi.js'
import { buildShim, startCluster, clusterUnavailableReason, NODE_LOCAL, type Cluster } from '../helpers/slurm-cluster.js'
import { requireFeature, REPO, ENROOT } from '../helpers/env.js'
import { buildMpiImage, mpiImageUnavailableReason, MPI_APP, PMI1_APP } from '../helpers/mpi-image.js'

const SLURM_PLUGINS = '/usr/lib/x86_64-linux-gnu/slurm-wlm'

/** Why Slurm's PMIx server cannot work here: the plugin dlopens the unversioned libpmix.so (libpmix-dev). */
function pmixUnavailableReason (): string | undefined {
  if (!existsSync(join(SLURM_PLUGINS, 'mpi_pmix_v4.so'))) return `${SLURM_PLUGINS}/mpi_pmix_v4.so is missing (slurm-wlm)`
  try { execFileSync('sh', ['-c', 'ldconfig -p | grep -q "libpmix.so "'], { stdio: 'ignore' }) } catch {
    return 'libpmix.so is not in the linker cache: slurmd would log "mpi/pmix_v4: can not load PMIx library" (install libpmix-dev)'
  }
  return undefined
}

// The hook's half without Slurm: at user_init there is no PMIX_* yet, so it finds the step's directories.
t.test('50-slurm-pmi finds the PMIx directories of a step started before its tasks', async t => {
  const d = mkdtempSync(join(tmpdir(), 'enroot-pmi-'))
  t.teardown(() => { rmSync(d, { recursive: true, force: true }) })
  writeFileSync(join(d, 'slurm.conf'), 'ClusterName=x\n# SlurmdSpoolDir=/nowhere\nSlurmdSpoolDir=' + d + '/%n/spool  # per node\n')
  mkdirSync(join(d, 'node2', 'spool', 'pmix.7.0'), { recursive: true })
  mkdirSync(join(d, 'cli', 'spmix_appdir_1001_7.0'), { recursive: true })
  const env = { SLURM_JOB_ID: '7', SLURM_STEP_ID: '0', SLURM_MPI_TYPE: 'pmix', SLURM_CONF: join(d, 'slurm.conf'), SLURM_TOPOLOGY_ADDR: 'node2', SLURM_TOPOLOGY_ADDR_PATTERN: 'node', SLURM_JOB_UID: '1001' }
  t.same(pmixStepDirs({ ...env, SLURM_PMIX_TMPDIR: join(d, 'cli') }, 0), { server: join(d, 'node2/spool/pmix.7.0'), client: join(d, 'cli/spmix_appdir_1001_7.0') })
  writeFileSync(join(d, 'mpi.conf'), `PMIxCliTmpDirBase=${d}/cli\n`)
  t.same(pmixStepDirs(env, 0).client, join(d, 'cli/spmix_appdir_1001_7.0'), 'mpi.conf wins over the environment')
  const ctx = { rootfs: '/r', runtimeDir: '/rt', environ: [], uid: 1001, gid: 1001 }
  const out = slurmPmi({ ...ctx, env })
  t.same(out.fstab.map(m => m.target), [join(d, 'cli/spmix_appdir_1001_7.0'), join(d, 'node2/spool/pmix.7.0'), ...(existsSync('/run/munge') ? ['/run/munge'] : [])])
  t.notOk(out.environ.includes('PMIX_MCA_gds=hash'), 'the data store is reachable: no fallback')
  const lost = slurmPmi({ ...ctx, env: { ...env, SLURM_JOB_ID: '8' } })
  t.ok(lost.environ.includes('PMIX_MCA_gds=hash'), 'no server directory: clients use the server socket instead of its store')
  t.same(slurmPmi({ ...ctx, env: { ...env, SLURM_MPI_TYPE: 'pmi2' } }).fstab.filter(m => m.target.includes('pmix')), [], 'only PMIx steps')
})

const why = clusterUnavailableReason()
const built = existsSync(join(REPO, 'dist', 'cli.js'))

if (requireFeature(t, 'Slurm cluster', why === undefined, why) &&
    requireFeature(t, 'the built launcher (npm run build)', built) &&
    requireFeature(t, 'Slurm mpi/pmix with libpmix', pmixUnavailableReason() === undefined, pmixUnavailableReason()) &&
    requireFeature(t, 'an MPI image built from the host (mpicc, Open MPI, PMIx)', mpiImageUnavailableReason() === undefined, mpiImageUnavailableReason())) {
  let cluster: Cluster
  let image: string
  // enroot's storage node-local (as in spank-enroot.test.ts); the PMIx client directory too (see above).
  const env = { XDG_RUNTIME_DIR: `${NODE_LOCAL}/run`, XDG_DATA_HOME: `${NODE_LOCAL}/data`, XDG_CACHE_HOME: `${NODE_LOCAL}/cache`, SLURM_PMIX_TMPDIR: NODE_LOCAL }
  const failWithLogs = (r: { status: number | null, stderr: string }): string => r.status === 0 ? '' : `${r.stderr}\n${cluster.logs()}`

  t.before(async () => {
    const so = buildShim()
    cluster = await startCluster()
    // The system configuration the launcher's enroot uses: the checkout's drop-ins plus 50-slurm-pmi.
    const sysconf = join(cluster.dir, 'sysconf')
    mkdirSync(join(sysconf, 'hooks.d'), { recursive: true })
    for (const d of ['environ.d', 'mounts.d']) symlinkSync(join(REPO, d), join(sysconf, d))
    for (const h of readdirSync(join(REPO, 'hooks.d')).filter(n => n.endsWith('.sh'))) symlinkSync(join(REPO, 'hooks.d', h), join(sysconf, 'hooks.d', h))
    symlinkSync(join(REPO, 'hooks.d', 'extra', '50-slurm-pmi.sh'), join(sysconf, 'hooks.d', '50-slurm-pmi.sh'))
    const launcher = join(cluster.dir, 'launcher')
    writeFileSync(launcher, `#!/bin/sh\nENROOT_SYSCONF_PATH='${sysconf}' exec '${ENROOT}' "$@"\n`, { mode: 0o755 })
    cluster.setPlugstack(`required ${so} launcher=${launcher} runtime_path=${NODE_LOCAL}/pyxis\n`)
    image = buildMpiImage(cluster.shared)
    const r = await cluster.srun(['-N3', 'mkdir', '-p', `${NODE_LOCAL}/data/enroot`, `${NODE_LOCAL}/run`, `${NODE_LOCAL}/cache`])
    if (r.status !== 0) throw new Error(r.stderr)
  })
  t.teardown(async () => { await cluster?.stop() })

  t.test('each task keeps its own PMIx rank and sees the PMIx server directory', async t => {
    const r = await cluster.srun(['--mpi=pmix', '-N3', '-n3', `--container-image=${image}`, 'sh', '-c',
      'echo $(hostname) $SLURM_PROCID $PMIX_RANK $PMIX_NAMESPACE $(ls -d "$PMIX_SERVER_TMPDIR" >/dev/null 2>&1 && echo bound) $(ls -d "$PMIX_DSTORE_21_BASE_PATH" >/dev/null 2>&1 && echo store)'],
    { env, timeoutMs: 120_000 })
    t.equal(r.status, 0, failWithLogs(r))
    const lines = r.stdout.trim().split('\n').sort()
    t.equal(lines.length, 3, r.stdout)
    lines.forEach((l, i) => t.match(l, new RegExp(`^node${i + 1} ${i} ${i} slurm\\.pmix\\.\\d+\\.\\d+ bound store$`), l))
  })

  t.test('srun --mpi=pmix -N3 -n3: MPI_Allreduce across the three nodes inside the container', async t => {
    const r = await cluster.srun(['--mpi=pmix', '-N3', '-n3', `--container-image=${image}`, MPI_APP], { env, timeoutMs: 180_000 })
    t.equal(r.status, 0, failWithLogs(r))
    t.same(r.stdout.trim().split('\n').sort(), [0, 1, 2].map(i => `rank ${i} of 3 sum 3 on node${i + 1}`), `${r.stdout}\n${r.stderr}`)
  })

  t.test('srun --mpi=pmi2 -N3 -n3: each task talks to Slurm on its own PMI_FD from inside the container', async t => {
    // Debian's Open MPI has no PMI-2 support; a PMI-1 client in sh (put, barrier across the nodes, get)
    // shows that the inherited PMI_FD and each task's PMI_RANK survive the join.
    const r = await cluster.srun(['--mpi=pmi2', '-N3', '-n3', `--container-image=${image}`, 'sh', PMI1_APP], { env, timeoutMs: 120_000 })
    t.equal(r.status, 0, failWithLogs(r))
    t.same(r.stdout.trim().split('\n').sort(), [0, 1, 2].map(i => `rank ${i} of 3 on node${i + 1} next: cmd=get_result rc=0 value=node${(i + 1) % 3 + 1}`), `${r.stdout}\n${r.stderr}`)
  })
}
