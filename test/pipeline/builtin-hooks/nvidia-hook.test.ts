// The 98-nvidia hook against a fake driver tree (test/helpers/fake-driver.ts): discovery, the plan it
// produces, the linker cache it writes (read back by glibc's ldconfig and used by the real dynamic loader).
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync, copyFileSync, statSync, symlinkSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { buildFakeDriver, DEFAULT_GPUS, FAKE_VERSION, FAKE_LIBS, HAVE_GCC, LIBDIR } from '../../helpers/fake-driver.js'
import { IS_ROOT } from '../../helpers/env.js'
import { discoverDriver, findLibraries } from '../../../launcher/src/pipeline/builtin-hooks/nvidia-driver.js'
import { nvidiaPlan, materialize, nvidia, procView, taskCudaVisible, LIB_DIR } from '../../../launcher/src/pipeline/builtin-hooks/nvidia.js'
import { migConfig } from '../../../launcher/src/pipeline/builtin-hooks/mig-config.js'
import { writeLdCache, parseLdCache, CACHE_FLAGS } from '../../../launcher/src/pipeline/builtin-hooks/ldcache.js'

const LDCONFIG = ['/sbin/ldconfig', '/usr/sbin/ldconfig'].find(p => existsSync(p))
const base = mkdtempSync(join(tmpdir(), 'enroot-fakedrv-'))
t.teardown(() => rmSync(base, { recursive: true, force: true }))
const MIG_GPUS = DEFAULT_GPUS.slice(0, 2).map((g, i) => i === 0 ? { ...g, model: 'NVIDIA A100-SXM4-40GB', cc: '8.0', mig: [{ gi: 1, ci: 0, giCap: 12, ciCap: 13, uuid: 'MIG-aaaa' }, { gi: 2, ci: 0, giCap: 21, ciCap: 22, uuid: 'MIG-bbbb' }] } : g)
const root = buildFakeDriver(join(base, 'drv'))
const migRoot = buildFakeDriver(join(base, 'mig'), { gpus: MIG_GPUS, libs: false })

let n = 0
function ctx (env: Record<string, string>, environ: string[] = [], drvRoot = root) {
  const run = join(base, `run${n++}`)
  mkdirSync(run)
  const rootfs = join(base, `rootfs${n}`)
  mkdirSync(join(rootfs, 'etc'), { recursive: true })
  return { rootfs, runtimeDir: run, env: { ENROOT_DRIVER_ROOT: drvRoot, ENROOT_RESTRICT_DEV: 'y', ...env }, environ, uid: 1000, gid: 1000 }
}
const targets = (lines: string[]) => lines.map(l => l.split(' ')[1])

t.test('discovery: version, GPUs in bus order with UUIDs and minors, nvidia_uvm', async t => {
  const d = discoverDriver(root)
  t.equal(d?.version, FAKE_VERSION)
  t.same(d?.gpus.map(g => [g.index, g.minor, g.uuid]), DEFAULT_GPUS.map((g, i) => [i, g.minor, g.uuid]))
  t.equal(d?.uvmLoaded, true)
  t.equal(discoverDriver(join(base, 'nothing-here')), undefined)
  t.same(discoverDriver(migRoot)?.migs, [{ gpuMinor: 0, gi: 1, ci: 0, giCap: 12, ciCap: 13 }, { gpuMinor: 0, gi: 2, ci: 0, giCap: 21, ciCap: 22 }])
})

t.test('libraries: through the host cache, only the running driver version, with their SONAMEs', { skip: !HAVE_GCC }, async t => {
  const libs = findLibraries(root, ['libcuda', 'libnvidia-ml', 'libnvidia-nvvm', 'libnvidia-fbc', 'libnvidia-nscq'], FAKE_VERSION, false)
  t.same(libs.map(l => [l.name, l.file, l.sonames]), [
    ['libcuda', `libcuda.so.${FAKE_VERSION}`, ['libcuda.so.1']],
    ['libnvidia-ml', `libnvidia-ml.so.${FAKE_VERSION}`, ['libnvidia-ml.so.1']],
    ['libnvidia-nvvm', `libnvidia-nvvm.so.${FAKE_VERSION}`, ['libnvidia-nvvm.so.4']]
  ], 'the stale 470 libnvidia-fbc and the absent nscq are left out')
  t.equal(libs[0]?.hostPath, join(root, LIBDIR, `libcuda.so.${FAKE_VERSION}`))
})

t.test('libraries: without a host cache the usual directories are searched', { skip: !HAVE_GCC }, async t => {
  const copy = join(base, 'nocache')
  execFileSync('cp', ['-a', root, copy])
  rmSync(join(copy, 'etc/ld.so.cache'), { force: true })
  t.same(findLibraries(copy, ['libcuda', 'libnvidia-fbc'], FAKE_VERSION, false).map(l => [l.name, l.sonames]), [['libcuda', ['libcuda.so.1']]])
})

t.test('the plan: devices, a library directory, the linker cache, binaries, firmware', { skip: !HAVE_GCC }, async t => {
  const c = ctx({ NVIDIA_DRIVER_CAPABILITIES: 'compute,utility' }, ['NVIDIA_VISIBLE_DEVICES=all'])
  const plan = nvidiaPlan(c)
  if (plan === undefined) return t.fail('no plan')
  const tg = targets(plan.fstab)
  t.same(tg.filter(p => p?.startsWith('/dev/')), ['/dev/nvidiactl', '/dev/nvidia-uvm', '/dev/nvidia-uvm-tools', ...DEFAULT_GPUS.map(g => `/dev/nvidia${g.minor}`)])
  t.ok(tg.includes(LIB_DIR) && tg.includes(`${LIB_DIR}/libcuda.so.${FAKE_VERSION}`) && tg.includes('/etc/ld.so.cache'))
  t.ok(tg.includes('/usr/bin/nvidia-smi') && tg.includes('/usr/bin/nvidia-debugdump') && tg.includes('/usr/bin/nvidia-cuda-mps-control'))
  t.ok(tg.includes(`/lib/firmware/nvidia/${FAKE_VERSION}/gsp_ga10x.bin`))
  t.ok(plan.fstab.find(l => l.includes('gsp_ga10x'))?.endsWith('nofail,silent'), 'firmware never fails a start (enroot#111)')
  t.same(plan.environ, [], 'all GPUs: CUDA keeps its own numbering')
  t.notOk(tg.includes('/dev/nvidia-modeset'), 'modeset only with display')
  const shared = nvidiaPlan({ ...c, env: { ...c.env, ENROOT_RESTRICT_DEV: '' } })
  t.same(targets(shared?.fstab ?? []).filter(p => p?.startsWith('/dev/')), [], 'with the host /dev nothing is bound over it')
})

t.test('the linker cache resolves every injected library for glibc, and the library directory links to them', { skip: !HAVE_GCC || LDCONFIG === undefined }, async t => {
  const c = ctx({ NVIDIA_VISIBLE_DEVICES: '0', NVIDIA_DRIVER_CAPABILITIES: 'all' })
  // an image whose cache has a stub libcuda (enroot#155) and its own libc
  const img = { key: 'libcuda.so.1', path: '/usr/lib/x86_64-linux-gnu/libcuda.so.1' }
  writeFileSync(join(c.rootfs, 'etc/ld.so.cache'), writeLdCache([
    { key: img.key, value: img.path, flags: CACHE_FLAGS.x8664, hwcap: 0n },
    { key: 'libc.so.6', value: '/lib/x86_64-linux-gnu/libc.so.6', flags: CACHE_FLAGS.x8664, hwcap: 0n }
  ]))
  nvidia({ ...c, rootfs: c.rootfs })
  const out = execFileSync(LDCONFIG as string, ['-p', '-C', join(c.runtimeDir, 'nvidia/ld.so.cache')], { encoding: 'utf8' })
  for (const [name, soname] of Object.entries(FAKE_LIBS)) {
    t.match(out, `\t${soname} (libc6,x86-64) => ${LIB_DIR}/${soname}\n`, soname)
    t.match(out, `\t${name}.so (libc6,x86-64) => ${LIB_DIR}/${name}.so\n`, `${name}.so`)
    t.equal(readlinkSync(join(c.runtimeDir, 'nvidia/lib64', soname)), `${name}.so.${FAKE_VERSION}`)
    t.equal(statSync(join(c.runtimeDir, 'nvidia/lib64', `${name}.so.${FAKE_VERSION}`)).size, 0, 'a placeholder for the bind')
  }
  t.notMatch(out, img.path, 'the image stub of libcuda.so.1 (enroot#155) is replaced')
  t.match(out, '\tlibc.so.6 (libc6,x86-64) => /lib/x86_64-linux-gnu/libc.so.6\n', 'the image entries are kept')
  t.notMatch(out, 'libnvidia-fbc', 'the stale library is not in the cache')
})

t.test('the real dynamic loader finds the injected libcuda through the written cache', { skip: !HAVE_GCC || !IS_ROOT }, async t => {
  const c = ctx({ NVIDIA_VISIBLE_DEVICES: '0', NVIDIA_DRIVER_CAPABILITIES: 'compute' })
  const plan = nvidiaPlan({ ...c, rootfs: '/' }) // the host's own cache plays the image's
  if (plan === undefined) return t.fail('no plan')
  materialize(plan)
  const prog = join(base, 'cuver')
  writeFileSync(`${prog}.c`, '#include <stdio.h>\nint cuDriverGetVersion(int *);\nint main(void) { int v = 0; cuDriverGetVersion(&v); printf("%d\\n", v); return 0; }\n')
  execFileSync('gcc', ['-o', prog, `${prog}.c`, `-L${join(root, LIBDIR)}`, '-l:libcuda.so.1'])
  const rt = join(c.runtimeDir, 'nvidia')
  const script = `mount -t tmpfs none /usr/local && mkdir -p ${LIB_DIR} && mount --bind ${rt}/lib64 ${LIB_DIR} &&
    mount --bind ${join(root, LIBDIR, `libcuda.so.${FAKE_VERSION}`)} ${LIB_DIR}/libcuda.so.${FAKE_VERSION} &&
    mount --bind ${rt}/ld.so.cache /etc/ld.so.cache && exec ${prog}`
  t.equal(execFileSync('unshare', ['-m', 'sh', '-c', script], { encoding: 'utf8' }).trim(), '12040')
})

t.test('compat32: 32-bit libraries from the host cache go to /usr/local/nvidia/lib; display adds nvidia-modeset', { skip: !HAVE_GCC || LDCONFIG === undefined }, async t => {
  // a host with the i386 driver libraries: the same files stand in (only names and cache flags matter here)
  const multi = join(base, 'multilib')
  execFileSync('cp', ['-a', root, multi])
  mkdirSync(join(multi, 'usr/lib/i386-linux-gnu'))
  copyFileSync(join(multi, LIBDIR, `libcuda.so.${FAKE_VERSION}`), join(multi, 'usr/lib/i386-linux-gnu', `libcuda.so.${FAKE_VERSION}`))
  symlinkSync(`libcuda.so.${FAKE_VERSION}`, join(multi, 'usr/lib/i386-linux-gnu/libcuda.so.1'))
  const host = readFileSync(join(multi, 'etc/ld.so.cache'))
  writeFileSync(join(multi, 'etc/ld.so.cache'), writeLdCache([...parseLdCache(host),
    { key: 'libcuda.so.1', value: '/usr/lib/i386-linux-gnu/libcuda.so.1', flags: CACHE_FLAGS.libc6, hwcap: 0n }]))
  const c = ctx({ NVIDIA_VISIBLE_DEVICES: '0', NVIDIA_DRIVER_CAPABILITIES: 'compute,compat32,display' }, [], multi)
  const plan = nvidiaPlan(c)
  const tg = targets(plan?.fstab ?? [])
  t.ok(tg.includes('/usr/local/nvidia/lib') && tg.includes(`/usr/local/nvidia/lib/libcuda.so.${FAKE_VERSION}`))
  t.ok(tg.includes('/dev/nvidia-modeset'))
  if (plan === undefined) return
  materialize(plan)
  const out = execFileSync(LDCONFIG as string, ['-p', '-C', join(c.runtimeDir, 'nvidia/ld.so.cache')], { encoding: 'utf8' })
  t.match(out, '\tlibcuda.so.1 (libc6) => /usr/local/nvidia/lib/libcuda.so.1\n')
  t.match(out, `\tlibcuda.so.1 (libc6,x86-64) => ${LIB_DIR}/libcuda.so.1\n`)
})

t.test('CUDA forward compatibility: newer compat libraries of the image win, empty stubs do not', { skip: !HAVE_GCC || LDCONFIG === undefined }, async t => {
  const c = ctx({ NVIDIA_VISIBLE_DEVICES: 'none', NVIDIA_DRIVER_CAPABILITIES: 'compute' })
  // as in CUDA images: /usr/local/cuda → /etc/alternatives/cuda → /usr/local/cuda-12.6, absolute links
  const compat = join(c.rootfs, 'usr/local/cuda-12.6/compat')
  mkdirSync(compat, { recursive: true })
  mkdirSync(join(c.rootfs, 'etc/alternatives'))
  symlinkSync('/etc/alternatives/cuda', join(c.rootfs, 'usr/local/cuda'))
  symlinkSync('/usr/local/cuda-12.6', join(c.rootfs, 'etc/alternatives/cuda'))
  copyFileSync(join(root, LIBDIR, `libcuda.so.${FAKE_VERSION}`), join(compat, 'libcuda.so.560.35.03'))
  execFileSync('ln', ['-s', 'libcuda.so.560.35.03', join(compat, 'libcuda.so.1')])
  writeFileSync(join(compat, 'libnvidia-ptxjitcompiler.so.560.35.03'), '')
  execFileSync('ln', ['-s', 'libnvidia-ptxjitcompiler.so.560.35.03', join(compat, 'libnvidia-ptxjitcompiler.so.1')])
  nvidia(c)
  const out = execFileSync(LDCONFIG as string, ['-p', '-C', join(c.runtimeDir, 'nvidia/ld.so.cache')], { encoding: 'utf8' })
  t.match(out, '\tlibcuda.so.1 (libc6,x86-64) => /usr/local/cuda/compat/libcuda.so.1\n')
  t.match(out, `\tlibnvidia-ptxjitcompiler.so.1 (libc6,x86-64) => ${LIB_DIR}/libnvidia-ptxjitcompiler.so.1\n`)
})

// srun -N1 -n2 --gpus-per-task=1: Slurm gives the step GPUs 4,5 and each task one of them.
t.test('per task: each task container gets its own GPU node and CUDA_VISIBLE_DEVICES by UUID', async t => {
  const step = { SLURM_JOB_ID: '7', SLURM_STEP_ID: '0', SLURM_STEP_GPUS: '4,5', NVIDIA_DRIVER_CAPABILITIES: 'utility' }
  for (const [task, gpu] of [[0, 4], [1, 5]] as const) {
    const plan = nvidiaPlan(ctx({ ...step, SLURM_PROCID: String(task), CUDA_VISIBLE_DEVICES: String(task) }, ['NVIDIA_VISIBLE_DEVICES=all']))
    t.same(targets(plan?.fstab ?? []).filter(p => /^\/dev\/nvidia\d/.test(p ?? '')), [`/dev/nvidia${gpu}`], `task ${task}`)
    t.same(plan?.environ, [`CUDA_VISIBLE_DEVICES=${DEFAULT_GPUS[gpu]?.uuid ?? ''}`])
  }
})

t.test('a container shared by the step (pyxis) holds the step GPUs; each task joining gets its own CUDA_VISIBLE_DEVICES', async t => {
  const step = { SLURM_JOB_ID: '7', SLURM_STEP_ID: '0', SLURM_STEP_GPUS: '4,5', PYXIS_VERSION: '0.21', ENROOT_DRIVER_ROOT: root }
  const plan = nvidiaPlan(ctx({ ...step, CUDA_VISIBLE_DEVICES: '0' }, ['NVIDIA_VISIBLE_DEVICES=all']))
  t.same(targets(plan?.fstab ?? []).filter(p => /^\/dev\/nvidia\d/.test(p ?? '')), ['/dev/nvidia4', '/dev/nvidia5'])
  t.same(plan?.environ, [], 'the first task\'s binding is not written into the shared environment')
  t.equal(taskCudaVisible({ ...step, CUDA_VISIBLE_DEVICES: '1' }, ['NVIDIA_VISIBLE_DEVICES=all']), DEFAULT_GPUS[5]?.uuid)
  t.equal(taskCudaVisible({ ENROOT_DRIVER_ROOT: root }, ['NVIDIA_VISIBLE_DEVICES=all']), undefined, 'outside Slurm: nothing to narrow')
})

t.test('the /proc/driver/nvidia view: ModifyDeviceFiles off, only the selected GPUs, MIG capabilities', async t => {
  const plan = { files: [], dirs: [], links: [], fstab: [], environ: [] } as Parameters<typeof procView>[0]
  const sel = { gpus: [discoverDriver(migRoot)?.gpus[1]].filter(g => g !== undefined), migs: [] }
  procView(plan, '/run/x', sel, join(migRoot, 'proc/driver/nvidia'))
  t.same(plan.files.map(f => [f.path, f.content]), [
    ['/run/x/proc/version', `NVRM version: NVIDIA UNIX x86_64 Kernel Module  ${FAKE_VERSION}  Tue Feb 20 00:00:00 UTC 2024\nGCC version:  gcc version 12.2.0\n`],
    ['/run/x/proc/params', 'ResmanDebugLevel: 4294967295\nModifyDeviceFiles: 0\nDeviceFileUID: 0\n']
  ])
  t.same(targets(plan.fstab), ['/proc/driver/nvidia', `/proc/driver/nvidia/gpus/${DEFAULT_GPUS[1]?.bus ?? ''}`, '/proc/driver/nvidia/capabilities'])
  t.same(plan.dirs, ['/run/x/proc', '/run/x/proc/gpus', `/run/x/proc/gpus/${DEFAULT_GPUS[1]?.bus ?? ''}`, '/run/x/proc/capabilities'])
})

t.test('the host environment wins over the image for NVIDIA_*; void in the image turns the hook off', async t => {
  t.equal(nvidiaPlan(ctx({}, ['NVIDIA_VISIBLE_DEVICES=void'])), undefined)
  t.equal(nvidiaPlan(ctx({}, [])), undefined)
  const plan = nvidiaPlan(ctx({ NVIDIA_VISIBLE_DEVICES: '3' }, ['NVIDIA_VISIBLE_DEVICES=void']))
  t.ok(targets(plan?.fstab ?? []).includes('/dev/nvidia3'))
})

t.test('requirements are checked against the driver, naming the unmet one', async t => {
  t.throws(() => nvidiaPlan(ctx({}, ['NVIDIA_VISIBLE_DEVICES=all', 'NVIDIA_REQUIRE_CUDA=cuda>=12.5 brand=tesla,driver>=470,driver<471'])),
    { code: 'HOOK', message: /^Unmet NVIDIA requirement NVIDIA_REQUIRE_CUDA: cuda>=12.5 \(driver 550.54.15, CUDA 12.4, GPUs: / })
  t.ok(nvidiaPlan(ctx({}, ['NVIDIA_VISIBLE_DEVICES=all', 'NVIDIA_REQUIRE_CUDA=cuda>=12.4 brand=tesla,driver>=470,driver<471'])))
  t.ok(nvidiaPlan(ctx({ NVIDIA_DISABLE_REQUIRE: '1' }, ['NVIDIA_VISIBLE_DEVICES=all', 'NVIDIA_REQUIRE_CUDA=cuda>=13.0'])))
  // arch= asks the driver's nvidia-smi (the fake answers 9.0 for these H100s)
  t.ok(nvidiaPlan(ctx({}, ['NVIDIA_VISIBLE_DEVICES=0', 'NVIDIA_REQUIRE_ARCH=arch>=9.0'])))
  t.throws(() => nvidiaPlan(ctx({}, ['NVIDIA_VISIBLE_DEVICES=0', 'NVIDIA_REQUIRE_ARCH=arch>=10.0'])), { message: /^Unmet NVIDIA requirement NVIDIA_REQUIRE_ARCH: arch>=10.0 .*sm 9.0/ })
})

t.test('MIG devices: by <gpu>:<mig> and by MIG UUID (asked of nvidia-smi), with their capability nodes', async t => {
  for (const id of ['0:1', 'MIG-bbbb', 'MIG-GPU-00000000-1111-2222-3333-444444444440/2/0']) {
    const plan = nvidiaPlan(ctx({ NVIDIA_VISIBLE_DEVICES: id }, [], migRoot))
    t.same(targets(plan?.fstab ?? []).filter(p => p?.startsWith('/dev/')), ['/dev/nvidiactl', '/dev/nvidia0', '/dev/nvidia-caps/nvidia-cap21', '/dev/nvidia-caps/nvidia-cap22'], id)
  }
  t.throws(() => nvidiaPlan(ctx({ NVIDIA_VISIBLE_DEVICES: '0:2' }, [], migRoot)), { message: 'Unknown NVIDIA device id: 0:2' })
})

t.test('50-mig-config asks nvidia-smi and turns on the MIG configuration capability', async t => {
  t.same(migConfig(ctx({ NVIDIA_VISIBLE_DEVICES: 'all' }, [], migRoot)).environ, ['NVIDIA_MIG_CONFIG_DEVICES=all'])
  t.same(migConfig(ctx({ NVIDIA_VISIBLE_DEVICES: 'all' }, [], root)).environ, [], 'no GPU in MIG mode')
  t.same(migConfig(ctx({ NVIDIA_VISIBLE_DEVICES: '0:1' }, [], migRoot)).environ, [], 'already MIG-addressed')
  const plan = nvidiaPlan(ctx({ NVIDIA_VISIBLE_DEVICES: 'all' }, ['NVIDIA_MIG_CONFIG_DEVICES=all'], migRoot))
  t.ok(targets(plan?.fstab ?? []).includes('/dev/nvidia-caps'))
})

t.test('no driver: images asking for all GPUs still start; an explicit GPU fails saying why', async t => {
  const none = join(base, 'empty')
  mkdirSync(none)
  t.equal(nvidiaPlan(ctx({}, ['NVIDIA_VISIBLE_DEVICES=all'], none)), undefined)
  t.throws(() => nvidiaPlan(ctx({ NVIDIA_VISIBLE_DEVICES: '0' }, [], none)), { code: 'HOOK', message: /but no NVIDIA driver is loaded: .*proc\/driver\/nvidia\/version is missing/ })
})

t.test('a missing nvidia_uvm module is only a warning (as enroot); the uvm nodes are then skipped', async t => {
  const noUvm = buildFakeDriver(join(base, 'nouvm'), { gpus: DEFAULT_GPUS.slice(0, 1), uvm: false, libs: false })
  const plan = nvidiaPlan(ctx({ NVIDIA_VISIBLE_DEVICES: 'all', NVIDIA_DRIVER_CAPABILITIES: 'compute' }, [], noUvm))
  t.same(targets(plan?.fstab ?? []).filter(p => p?.startsWith('/dev/')), ['/dev/nvidiactl', '/dev/nvidia0'])
})

t.test('speed: the whole hook on an 8-GPU node stays far under 50 ms', { skip: !HAVE_GCC }, async t => {
  // CPU time, not wall time: the suite shares two cores with other work, and the target is the hook's own cost
  const cpu: number[] = []
  const wall: number[] = []
  for (let i = 0; i < 7; i++) {
    const c = ctx({ NVIDIA_VISIBLE_DEVICES: 'all', NVIDIA_DRIVER_CAPABILITIES: 'all' }, [])
    const c0 = process.cpuUsage()
    const t0 = process.hrtime.bigint()
    nvidia({ ...c, rootfs: '/' }) // the host's cache (hundreds of entries) plays a big image's
    wall.push(Number(process.hrtime.bigint() - t0) / 1e6)
    const d = process.cpuUsage(c0)
    cpu.push((d.user + d.system) / 1000)
  }
  const median = (a: number[]): number => a.sort((x, y) => x - y)[3] ?? 0
  t.comment(`98-nvidia: median ${median(cpu).toFixed(2)} ms CPU, ${median(wall).toFixed(2)} ms wall`)
  t.ok(median(cpu) < 50, `median ${median(cpu).toFixed(2)} ms CPU`)
})
