import t from 'tap'
import { parseVisible, selectDevices, slurmBinding, resolveId, parseIndexList } from '../../../launcher/src/pipeline/builtin-hooks/nvidia-select.js'
import type { HostDriver } from '../../../launcher/src/pipeline/builtin-hooks/nvidia-driver.js'

// 4 GPUs in bus order; GPU 2 is in MIG mode with two devices (gi1/ci0, gi2/ci0)
const gpu = (i: number) => ({ index: i, busId: `0000:${(0x18 + i).toString(16)}:00.0`, minor: i, uuid: `GPU-${i}`, model: 'NVIDIA A100' })
const drv: HostDriver = {
  root: '/', version: '550.54.15', uvmLoaded: true,
  gpus: [0, 1, 2, 3].map(gpu),
  migs: [{ gpuMinor: 2, gi: 1, ci: 0, giCap: 21, ciCap: 22 }, { gpuMinor: 2, gi: 2, ci: 0, giCap: 30, ciCap: 31 }]
}
const idx = (s: { gpus: Array<{ index: number }> }) => s.gpus.map(g => g.index)

t.test('NVIDIA_VISIBLE_DEVICES: unset, empty and void turn GPU support off; none keeps the driver only', async t => {
  t.same(parseVisible(undefined), { kind: 'void' })
  t.same(parseVisible(''), { kind: 'void' })
  t.same(parseVisible('void'), { kind: 'void' })
  t.same(parseVisible('none'), { kind: 'none' })
  t.same(parseVisible('all'), { kind: 'all' })
  t.same(parseVisible('0, 2'), { kind: 'list', ids: ['0', '2'] })
  t.same(selectDevices({ kind: 'none' }, drv, {}), { gpus: [], migs: [] })
})

t.test('ids: indexes, UUIDs (any case), PCI bus ids, <gpu>:<mig> and MIG-GPU-<uuid>/<gi>/<ci>', async t => {
  t.equal(resolveId('1', drv).gpu.index, 1)
  t.equal(resolveId('gpu-3', drv).gpu.index, 3)
  t.equal(resolveId('1a:00.0', drv).gpu.index, 2)
  t.equal(resolveId('00000000:1B:00.0', drv).gpu.index, 3)
  t.same(resolveId('2:1', drv), { gpu: drv.gpus[2], mig: drv.migs[1] })
  t.same(resolveId('MIG-GPU-2/1/0', drv), { gpu: drv.gpus[2], mig: drv.migs[0] })
  t.same(resolveId('MIG-abc', drv, { lookupMigUuid: u => u === 'MIG-abc' ? drv.migs[1] : undefined }), { gpu: drv.gpus[2], mig: drv.migs[1] })
})

t.test('an unknown id fails naming it and listing what the node has', async t => {
  t.throws(() => resolveId('7', drv), { code: 'HOOK', message: 'Unknown NVIDIA device id: 7', hint: /0 \(GPU-0\), 1 \(GPU-1\)/ })
  t.throws(() => resolveId('1:0', drv), { message: 'Unknown NVIDIA device id: 1:0' })
  t.throws(() => resolveId('MIG-nope', drv), { message: 'Unknown NVIDIA device id: MIG-nope' })
})

t.test('all selects every GPU and every MIG device, with no CUDA_VISIBLE_DEVICES outside Slurm', async t => {
  const s = selectDevices({ kind: 'all' }, drv, {})
  t.same(idx(s), [0, 1, 2, 3])
  t.same(s.migs, drv.migs)
  t.equal(s.cudaVisible, undefined)
})

t.test('a list selects those GPUs and pins CUDA to them by UUID (numbering-independent)', async t => {
  const s = selectDevices(parseVisible('3,1'), drv, {})
  t.same(idx(s), [1, 3])
  t.equal(s.cudaVisible, 'GPU-1,GPU-3')
  const m = selectDevices(parseVisible('2:0'), drv, {})
  t.same(m.migs, [drv.migs[0]])
  t.equal(m.cudaVisible, 'MIG-GPU-2/1/0')
})

t.test('Slurm ranges and lists', async t => {
  t.same(parseIndexList('0-2,5'), [0, 1, 2, 5])
  t.equal(parseIndexList('GPU-1'), undefined)
})

// srun -N1 -n2 --gpus-per-task=1 on a node where the step got GPUs 2 and 3:
// Slurm sets SLURM_STEP_GPUS=2,3 for both tasks, and CUDA_VISIBLE_DEVICES per task.
const step = { SLURM_JOB_ID: '42', SLURM_STEP_ID: '0', SLURM_STEP_GPUS: '2,3' }

t.test('per task: ConstrainDevices=yes numbering (positions within the step) gives each task its own GPU', async t => {
  const t0 = selectDevices({ kind: 'all' }, drv, { ...step, SLURM_PROCID: '0', CUDA_VISIBLE_DEVICES: '0' })
  const t1 = selectDevices({ kind: 'all' }, drv, { ...step, SLURM_PROCID: '1', CUDA_VISIBLE_DEVICES: '1' })
  t.same(idx(t0), [2])
  t.same(idx(t1), [3])
  t.equal(t0.cudaVisible, 'GPU-2')
  t.equal(t1.cudaVisible, 'GPU-3')
})

t.test('per task: global numbering is recognised when an index cannot be a position', async t => {
  t.same(idx(selectDevices({ kind: 'all' }, drv, { ...step, CUDA_VISIBLE_DEVICES: '3' })), [3])
  t.same(slurmBinding({ SLURM_JOB_ID: '1', CUDA_VISIBLE_DEVICES: '1' }, drv).task?.map(g => g.index), [1], 'no step list: global')
})

t.test('a container shared by the step (pyxis) gets the step GPUs, and no per-task CUDA_VISIBLE_DEVICES', async t => {
  const s = selectDevices({ kind: 'all' }, drv, { ...step, CUDA_VISIBLE_DEVICES: '0', PYXIS_VERSION: '0.20' }, { shared: true })
  t.same(idx(s), [2, 3])
  t.equal(s.cudaVisible, undefined)
})

t.test('Slurm variables outside a job are ignored; NoDevFiles means no GPU', async t => {
  t.same(idx(selectDevices({ kind: 'all' }, drv, { CUDA_VISIBLE_DEVICES: '1' })), [0, 1, 2, 3])
  t.same(idx(selectDevices({ kind: 'all' }, drv, { SLURM_JOB_ID: '1', CUDA_VISIBLE_DEVICES: 'NoDevFiles' })), [])
})

t.test('an explicit id outside the Slurm binding fails and says which GPUs the task has', async t => {
  t.throws(() => selectDevices(parseVisible('1'), drv, { ...step, CUDA_VISIBLE_DEVICES: '0' }),
    { code: 'HOOK', message: 'NVIDIA device 1 is not one of the GPUs Slurm gave this task (2)' })
  t.same(idx(selectDevices(parseVisible('2'), drv, { ...step, CUDA_VISIBLE_DEVICES: '0' })), [2])
})
