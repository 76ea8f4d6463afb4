// 98-nvidia end to end: `enroot start` of a busybox image as a non-root user, with ENROOT_DRIVER_ROOT at
// a fake driver tree (test/helpers/fake-driver.ts). What is asserted is what the container itself sees.
import t from 'tap'
import { copyFileSync, existsSync, mkdirSync, symlinkSync, chownSync } from 'node:fs'
import { join } from 'node:path'
import { REPO, IS_ROOT, enroot, enrootEnv, requireFeature, testUser, userTmp } from '../../helpers/env.js'
import { buildRootfs } from '../../helpers/rootfs.js'
import { buildFakeDriver, DEFAULT_GPUS, FAKE_LIBS, HAVE_GCC, UVM_MAJOR, type FakeGpu } from '../../helpers/fake-driver.js'
import { runtimeAvailable } from '../../runtime/harness.js'
import { LIB_DIR } from '../../../launcher/src/pipeline/builtin-hooks/nvidia.js'

const LDCONFIG = ['/sbin/ldconfig', '/usr/sbin/ldconfig'].find(p => existsSync(p))

function ready (t: Parameters<typeof requireFeature>[0]): boolean {
  const r = runtimeAvailable()
  return requireFeature(t, 'the container runtime', r.ok, r.why) &&
    requireFeature(t, 'root to create device nodes', IS_ROOT) && requireFeature(t, 'gcc', HAVE_GCC) &&
    requireFeature(t, 'a static ldconfig', LDCONFIG !== undefined)
}

const trees = new Map<string, string>()
let treeDir: string | undefined
const treeBase = (): string => (treeDir ??= userTmp(t, 'enroot-fakedrv-'))

/** A system configuration with the shipped mounts and the devices + nvidia hooks, a busybox image named gpu. */
function setup (t: Parameters<typeof userTmp>[0], imageEnv: string[], gpus: FakeGpu[] = DEFAULT_GPUS, hooks: string[] = []): { env: Record<string, string>, drv: string, base: string } {
  const base = userTmp(t)
  // one driver tree per GPU layout for the whole file: compiling its libraries is the slow part
  const key = JSON.stringify(gpus)
  let drv = trees.get(key)
  if (drv === undefined) { drv = buildFakeDriver(join(treeBase(), `drv${trees.size}`), { gpus, hcas: 2 }); trees.set(key, drv) }
  const sys = join(base, 'sysconf')
  for (const d of ['hooks.d', 'mounts.d', 'environ.d']) mkdirSync(join(sys, d), { recursive: true })
  for (const f of ['mounts.d/10-system.fstab', 'hooks.d/10-devices.sh', 'hooks.d/98-nvidia.sh', 'hooks.d/99-mellanox.sh']) symlinkSync(join(REPO, f), join(sys, f))
  // opt-in extras, linked in the way an administrator does
  for (const h of hooks) symlinkSync(join(REPO, 'hooks.d', 'extra', h), join(sys, 'hooks.d', h))
  const rootfs = buildRootfs(join(base, 'data', 'gpu'), { files: { 'etc/environment': imageEnv.map(l => `${l}\n`).join('') } })
  // busybox has no ldconfig: the host's (static) one reads the container's /etc/ld.so.cache
  copyFileSync(LDCONFIG as string, join(rootfs, 'bin', 'ldconfig'))
  if (IS_ROOT) { const u = testUser(); chownSync(join(rootfs, 'bin', 'ldconfig'), u.uid, u.gid) }
  const env = enrootEnv(base, { ENROOT_SYSCONF_PATH: sys, ENROOT_DATA_PATH: join(base, 'data'), ENROOT_DRIVER_ROOT: drv, ENROOT_RESTRICT_DEV: 'y' })
  return { env, drv, base }
}

const COMPUTE_UTILITY = ['libcuda', 'libnvidia-ml', 'libnvidia-ptxjitcompiler', 'libnvidia-nvvm', 'libcudadebugger', 'libnvidia-cfg']
const sh = (script: string): string[] => ['start', 'gpu', 'sh', '-c', script]

t.test('a non-root container sees the GPU nodes, resolves every driver library and runs nvidia-smi', async t => {
  if (!ready(t)) return
  const { env } = setup(t, ['NVIDIA_VISIBLE_DEVICES=all', 'NVIDIA_DRIVER_CAPABILITIES=compute,utility'])
  const r = await enroot(sh('id -u; for d in /dev/nvidia*; do stat -c "%n %F %t:%T" $d; done; ldconfig -p; nvidia-smi -L; ' +
    `for l in ${LIB_DIR}/*.so; do test -s $l && echo "nonempty $l"; done`), env)
  t.equal(r.status, 0, r.stderr)
  const lines = r.stdout.split('\n')
  t.equal(lines[0], String(testUser().uid), 'not root inside')
  for (const g of DEFAULT_GPUS) t.ok(lines.includes(`/dev/nvidia${g.minor} character special file c3:${g.minor.toString(16)}`), `nvidia${g.minor} is 195:${g.minor}`)
  t.ok(lines.includes('/dev/nvidiactl character special file c3:ff'), 'nvidiactl is 195:255')
  t.ok(lines.includes(`/dev/nvidia-uvm character special file ${UVM_MAJOR.toString(16)}:0`))
  for (const [name, soname] of Object.entries(FAKE_LIBS)) {
    if (COMPUTE_UTILITY.includes(name)) {
      t.match(r.stdout, `\t${soname} (libc6,x86-64) => ${LIB_DIR}/${soname}\n`, soname)
      t.ok(lines.includes(`nonempty ${LIB_DIR}/${name}.so`), `${name}.so reaches the host library through its links`)
    } else {
      t.notMatch(r.stdout, soname, `${soname}: not for compute,utility`)
    }
  }
  t.match(r.stdout, `GPU 0: NVIDIA H100 80GB HBM3 (UUID: ${DEFAULT_GPUS[0]?.uuid ?? ''})`)
})

t.test('per task (srun -n2 --gpus-per-task=1): each task sees only its GPU, and CUDA is pinned to it', async t => {
  if (!ready(t)) return
  const { env } = setup(t, ['NVIDIA_VISIBLE_DEVICES=all'])
  const slurm = { SLURM_JOB_ID: '99', SLURM_STEP_ID: '0', SLURM_STEP_GPUS: '2,3', SLURM_NTASKS: '2' }
  for (const task of [0, 1]) {
    const r = await enroot(sh('ls /dev | grep "^nvidia[0-9]"; echo "CVD=$CUDA_VISIBLE_DEVICES"'), { ...env, ...slurm, SLURM_PROCID: String(task), SLURM_LOCALID: String(task), CUDA_VISIBLE_DEVICES: String(task) })
    t.equal(r.status, 0, r.stderr)
    t.equal(r.stdout, `nvidia${2 + task}\nCVD=${DEFAULT_GPUS[2 + task]?.uuid ?? ''}\n`, `task ${task}`)
  }
})

t.test('an unmet NVIDIA_REQUIRE_CUDA stops the start with a message naming it', async t => {
  if (!ready(t)) return
  const { env } = setup(t, ['NVIDIA_VISIBLE_DEVICES=all', 'NVIDIA_REQUIRE_CUDA=cuda>=12.6 brand=tesla,driver>=470,driver<471'])
  const r = await enroot(sh('echo ran'), env)
  t.equal(r.status, 1)
  t.equal(r.stdout, '')
  t.match(r.stderr, 'Unmet NVIDIA requirement NVIDIA_REQUIRE_CUDA: cuda>=12.6 (driver 550.54.15, CUDA 12.4')
  t.match(r.stderr, 'NVIDIA_DISABLE_REQUIRE=1')
  const ok = await enroot(['start', '-e', 'NVIDIA_DISABLE_REQUIRE=1', 'gpu', 'echo', 'ran'], { ...env, NVIDIA_DISABLE_REQUIRE: '1' })
  t.equal(ok.stdout, 'ran\n', ok.stderr)
})

t.test('a MIG device: its parent GPU and its two capability nodes, nothing else', async t => {
  if (!ready(t)) return
  const gpus = DEFAULT_GPUS.slice(0, 2).map((g, i) => i === 0 ? { ...g, mig: [{ gi: 1, ci: 0, giCap: 12, ciCap: 13, uuid: 'MIG-aaaa' }, { gi: 2, ci: 0, giCap: 21, ciCap: 22, uuid: 'MIG-bbbb' }] } : g)
  const { env } = setup(t, ['NVIDIA_VISIBLE_DEVICES=MIG-bbbb'], gpus)
  const r = await enroot(sh('ls /dev/nvidia-caps; ls /dev | grep "^nvidia[0-9]"; echo "CVD=$CUDA_VISIBLE_DEVICES"'), env)
  t.equal(r.status, 0, r.stderr)
  t.equal(r.stdout, `nvidia-cap21\nnvidia-cap22\nnvidia0\nCVD=MIG-${gpus[0]?.uuid ?? ''}/2/0\n`)
})

t.test('an unknown device id stops the start and lists what the node has', async t => {
  if (!ready(t)) return
  const { env } = setup(t, ['NVIDIA_VISIBLE_DEVICES=9'])
  const r = await enroot(sh('echo ran'), env)
  t.equal(r.status, 1)
  t.match(r.stderr, 'Unknown NVIDIA device id: 9')
})

t.test('99-mellanox: only the selected HCA\'s verbs node, with rdma_cm', async t => {
  if (!ready(t)) return
  const { env } = setup(t, ['MELLANOX_VISIBLE_DEVICES=1'])
  const r = await enroot(sh('ls /dev/infiniband; stat -c "%t:%T" /dev/infiniband/uverbs1'), env)
  t.equal(r.status, 0, r.stderr)
  t.equal(r.stdout, 'rdma_cm\nuverbs1\ne7:c1\n')
})

t.test('50-slurm-pmi linked in: the PMIx server directory and the PMIx variables reach the container', async t => {
  if (!ready(t)) return
  const { env, base } = setup(t, [], DEFAULT_GPUS, ['50-slurm-pmi.sh'])
  const pmix = join(base, 'pmix.99.0')
  mkdirSync(pmix)
  if (IS_ROOT) { const u = testUser(); chownSync(pmix, u.uid, u.gid) }
  const slurm = { SLURM_JOB_ID: '99', SLURM_STEP_ID: '0', SLURM_MPI_TYPE: 'pmix', PMIX_SERVER_TMPDIR: pmix, PMIX_SECURITY_MODE: 'native', PMIX_RANK: '0' }
  const r = await enroot(sh(`echo "$PMIX_MCA_psec $SLURM_JOB_ID $PMIX_RANK"; test -d ${pmix} && echo mounted`), { ...env, ...slurm })
  t.equal(r.status, 0, r.stderr)
  t.equal(r.stdout, 'native 99 0\nmounted\n')
})
