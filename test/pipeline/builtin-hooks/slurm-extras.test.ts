// The opt-in extras (50-slurm-pmi, 50-slurm-pytorch) and 99-mellanox, as data.
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { pmiEnviron, pmiMounts, slurmPmi } from '../../../launcher/src/pipeline/builtin-hooks/slurm-pmi.js'
import { firstHost, pytorchEnviron, slurmPytorch } from '../../../launcher/src/pipeline/builtin-hooks/slurm-pytorch.js'
import { discoverIb, selectIb, mellanoxLines, mellanox } from '../../../launcher/src/pipeline/builtin-hooks/mellanox.js'
import { buildFakeIb } from '../../helpers/fake-driver.js'

const ctx = (env: Record<string, string>, environ: string[] = []) => ({ rootfs: '/r', runtimeDir: '/run/x', env, environ, uid: 1000, gid: 1000 })
const job = { SLURM_JOB_ID: '1234', SLURM_STEP_ID: '0', SLURM_PROCID: '1', SLURM_LOCALID: '1', SLURM_NTASKS: '8', SLURM_STEP_NODELIST: 'gpu[07-09,12]', SLURM_STEP_NUM_TASKS: '8', SLURM_STEP_NUM_NODES: '4' }

t.test('50-slurm-pmi: only inside a step', async t => {
  t.same(slurmPmi(ctx({ SLURM_JOB_ID: '1' })).environ, [])
})

t.test('50-slurm-pmi: SLURM_*, PMIX_* with the MCA translations, PMI_*', async t => {
  const env = { ...job, SLURM_MPI_TYPE: 'pmix_v4', PMIX_RANK: '1', PMIX_PTL_MODULE: 'tcp,usock', PMIX_SECURITY_MODE: 'munge,native', PMIX_GDS_MODULE: 'ds21,ds12,hash', PMIX_MCA_gds: 'hash', PMI_FD: '5', HOME: '/h' }
  t.same(pmiEnviron(env, false), [
    'SLURM_JOB_ID=1234', 'SLURM_LOCALID=1', 'SLURM_MPI_TYPE=pmix_v4', 'SLURM_NTASKS=8', 'SLURM_PROCID=1', 'SLURM_STEP_ID=0',
    'SLURM_STEP_NODELIST=gpu[07-09,12]', 'SLURM_STEP_NUM_NODES=4', 'SLURM_STEP_NUM_TASKS=8',
    'PMIX_GDS_MODULE=ds21,ds12,hash', 'PMIX_MCA_gds=hash', 'PMIX_PTL_MODULE=tcp,usock', 'PMIX_RANK=1', 'PMIX_SECURITY_MODE=munge,native',
    'PMIX_MCA_ptl=tcp,usock', 'PMIX_MCA_psec=munge,native',
    'PMI_FD=5'
  ])
})

t.test('50-slurm-pmi: a container shared by the step gets no per-task variable (pyxis-behaviour §7.2)', async t => {
  const out = pmiEnviron({ ...job, PMIX_RANK: '1', PMI_RANK: '1', PMI_FD: '5', PMI_SIZE: '8' }, true)
  t.same(out.filter(l => /^(SLURM_PROCID|SLURM_LOCALID|PMIX_RANK|PMI_RANK|PMI_FD)=/.test(l)), [])
  t.ok(out.includes('PMI_SIZE=8'))
  t.ok(slurmPmi(ctx({ ...job, PYXIS_VERSION: '0.20' })).environ.every(l => !l.startsWith('SLURM_PROCID=')))
})

t.test('50-slurm-pmi: PMIx without SLURM_MPI_TYPE=pmix* is not copied; the server directory and munge are bound', async t => {
  t.same(pmiEnviron({ SLURM_MPI_TYPE: 'pmi2', PMIX_RANK: '0' }, false), ['SLURM_MPI_TYPE=pmi2'])
  const base = mkdtempSync(join(tmpdir(), 'enroot-munge-'))
  t.teardown(() => rmSync(base, { recursive: true, force: true }))
  t.same(pmiMounts({ PMIX_SERVER_TMPDIR: '/var/spool/slurmd/pmix.1.0' }, base), [
    '/var/spool/slurmd/pmix.1.0 /var/spool/slurmd/pmix.1.0 none x-create=dir,bind,rw,nosuid,noexec,nodev,private,nofail',
    `${base} ${base} none x-create=dir,bind,rw,nosuid,noexec,nodev,private,nofail,silent`
  ])
  t.same(pmiMounts({}, join(base, 'absent')), [])
})

t.test('50-slurm-pytorch: first host of a Slurm hostlist', async t => {
  t.equal(firstHost('gpu[07-09,12],cpu1'), 'gpu07')
  t.equal(firstHost('node1,node2'), 'node1')
  t.equal(firstHost('rack[2-3]-n[10-11]'), 'rack2-n10')
  t.equal(firstHost(''), undefined)
})

t.test('50-slurm-pytorch: the torch.distributed variables, each only when the image lacks it', async t => {
  t.same(pytorchEnviron(job, [], false), [], 'not a PyTorch image')
  t.same(pytorchEnviron(job, ['PYTORCH_VERSION=2.3.0'], false), ['MASTER_ADDR=gpu07', 'MASTER_PORT=62234', 'WORLD_SIZE=8', 'RANK=1', 'LOCAL_RANK=1', 'OMP_NUM_THREADS=1'])
  t.same(pytorchEnviron(job, ['PYTORCH_VERSION=2.3.0', 'MASTER_PORT=1', 'OMP_NUM_THREADS=4'], true), ['MASTER_ADDR=gpu07', 'WORLD_SIZE=8'], 'shared: no per-task rank')
  t.same(slurmPytorch(ctx({ ...job, SLURM_STEP_NUM_TASKS: '4' }, ['PYTORCH_VERSION=2'])).environ.includes('OMP_NUM_THREADS=1'), false)
})

t.test('99-mellanox: devices in PCI order, selection, unknown ids, superuser-only umad/issm', async t => {
  const root = mkdtempSync(join(tmpdir(), 'enroot-ib-'))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  buildFakeIb(root, 2)
  const devs = discoverIb(root)
  t.same(devs.map(d => [d.ibdev, d.uverbs, d.umad, d.issm]), [['mlx5_0', ['uverbs0'], ['umad0'], ['issm0']], ['mlx5_1', ['uverbs1'], ['umad1'], ['issm1']]])
  t.same(selectIb('1', devs).map(d => d.ibdev), ['mlx5_1'])
  t.same(selectIb('mlx5_0', devs).map(d => d.ibdev), ['mlx5_0'])
  t.throws(() => selectIb('2', devs), { code: 'HOOK', message: 'Unknown MELLANOX device id: 2' })
  const tg = (l: string[]) => l.map(x => x.split(' ')[1])
  t.same(tg(mellanoxLines(root, selectIb('1', devs), true, false)), ['/dev/infiniband/rdma_cm', '/dev/infiniband/uverbs1'])
  t.same(tg(mellanoxLines(root, selectIb('1', devs), true, true)), ['/dev/infiniband/rdma_cm', '/dev/infiniband/uverbs1', '/dev/infiniband/umad1', '/dev/infiniband/issm1'])
  t.same(mellanoxLines(root, devs, false, false), [], 'the host /dev is never bound over')
  t.same(mellanox(ctx({ ENROOT_DRIVER_ROOT: root, ENROOT_RESTRICT_DEV: 'y' }, ['MELLANOX_VISIBLE_DEVICES=all'])).fstab.map(o => o.target),
    ['/dev/infiniband/rdma_cm', '/dev/infiniband/uverbs0', '/dev/infiniband/uverbs1'], 'the image asks, the hook binds')
  t.same(mellanox(ctx({ ENROOT_DRIVER_ROOT: root, MELLANOX_VISIBLE_DEVICES: 'none' }, ['MELLANOX_VISIBLE_DEVICES=all'])).fstab, [], 'none from the host wins')
})
