// A fake NVIDIA driver tree, for ENROOT_DRIVER_ROOT: what the GPU hook reads on a real node, without a GPU.
//   dev/       real character nodes with NVIDIA's numbers (195 N, 195 255 nvidiactl, uvm and caps majors as
//              proc/devices says) — mknod needs root; without root the nodes are regular files
//   proc/      driver/nvidia/{version,params,gpus/<bus>/information,capabilities/…}, devices, modules
//   usr/lib/   small shared libraries with the real SONAMEs, compiled here, named <lib>.so.<driver version>,
//              plus one stale library of an older driver that must not be injected; etc/ld.so.cache made by
//              the host's ldconfig -r (an independent writer, so our reader is checked against glibc's)
//   usr/bin/   a fake nvidia-smi (a /bin/sh script: -L, --query-gpu, the banner) and the other binaries
import { execFileSync } from 'node:child_process'
import { chmodSync, mkdirSync, symlinkSync, writeFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { IS_ROOT } from './env.js'

export const FAKE_VERSION = '550.54.15'
export const FAKE_CUDA = '12.4'
export const UVM_MAJOR = 508
export const CAPS_MAJOR = 235
export const LIBDIR = '/usr/lib/x86_64-linux-gnu'
export const HAVE_GCC = existsSync('/usr/bin/gcc')

export interface FakeGpu { bus: string, uuid: string, model: string, minor: number, cc: string, mig?: Array<{ gi: number, ci: number, giCap: number, ciCap: number, uuid: string }> }

export const DEFAULT_GPUS: FakeGpu[] = Array.from({ length: 8 }, (_, i) => ({
  bus: `0000:${(0x18 + i * 0x10).toString(16)}:00.0`,
  uuid: `GPU-0000000${i}-1111-2222-3333-44444444444${i}`,
  model: 'NVIDIA H100 80GB HBM3',
  minor: i,
  cc: '9.0'
}))

/** library name → SONAME (the driver's own) */
export const FAKE_LIBS: Record<string, string> = {
  libcuda: 'libcuda.so.1',
  'libnvidia-ml': 'libnvidia-ml.so.1',
  'libnvidia-ptxjitcompiler': 'libnvidia-ptxjitcompiler.so.1',
  'libnvidia-nvvm': 'libnvidia-nvvm.so.4',
  libcudadebugger: 'libcudadebugger.so.1',
  'libnvidia-cfg': 'libnvidia-cfg.so.1',
  'libnvidia-encode': 'libnvidia-encode.so.1',
  libnvcuvid: 'libnvcuvid.so.1',
  libGLX_nvidia: 'libGLX_nvidia.so.0',
  libEGL_nvidia: 'libEGL_nvidia.so.0'
}

const w = (root: string, path: string, content: string, mode = 0o644): void => {
  mkdirSync(join(root, path, '..'), { recursive: true })
  writeFileSync(join(root, path), content, { mode })
  chmodSync(join(root, path), mode)
}

function mknod (root: string, path: string, major: number, minor: number): void {
  mkdirSync(join(root, path, '..'), { recursive: true })
  if (IS_ROOT) {
    execFileSync('mknod', ['-m', '666', join(root, path), 'c', String(major), String(minor)])
  } else {
    writeFileSync(join(root, path), '')
  }
}

function smiScript (gpus: readonly FakeGpu[]): string {
  const list = gpus.map((g, i) => [`echo 'GPU ${i}: ${g.model} (UUID: ${g.uuid})'`,
    ...(g.mig ?? []).map((m, j) => `echo '  MIG 1g.10gb     Device  ${j}: (UUID: ${m.uuid})'`)].join('\n')).join('\n')
  const arch = gpus.map(g => `echo '${g.bus.replace(/^0000/, '00000000').toUpperCase()}, ${g.cc}'`).join('\n')
  const mig = gpus.map(g => `echo '${g.mig === undefined ? 'Disabled' : 'Enabled'}'`).join('\n')
  return `#!/bin/sh
# fake nvidia-smi (test suite)
case "$1" in
  -L) ${list.split('\n').join('\n      ')} ;;
  --query-gpu=pci.bus_id,compute_cap) ${arch.split('\n').join('\n      ')} ;;
  --query-gpu=mig.mode.current) ${mig.split('\n').join('\n      ')} ;;
  *) echo "| NVIDIA-SMI ${FAKE_VERSION}    Driver Version: ${FAKE_VERSION}    CUDA Version: ${FAKE_CUDA}     |" ;;
esac
`
}

/** Compile one library with its SONAME; libcuda answers cuDriverGetVersion like the real one. */
function compile (root: string, name: string, soname: string, version: string, work: string): void {
  const src = join(work, `${name}.c`)
  writeFileSync(src, name === 'libcuda'
    ? 'int cuDriverGetVersion(int *v) { *v = 12040; return 0; }\nint cuInit(unsigned f) { (void)f; return 100; }\n'
    : `int ${name.replace(/[^a-zA-Z0-9]/g, '_')}_fake(void) { return 0; }\n`)
  const file = join(root, LIBDIR, `${name}.so.${version}`)
  execFileSync('gcc', ['-shared', '-fPIC', '-nostdlib', `-Wl,-soname,${soname}`, '-o', file, src])
  symlinkSync(`${name}.so.${version}`, join(root, LIBDIR, soname))
}

export interface FakeDriverOptions { gpus?: FakeGpu[], uvm?: boolean, libs?: boolean, /** mlx5 HCAs */ hcas?: number }

/** InfiniBand: per HCA a PCI device under the mlx5_core driver with its verbs/mad class entries, and the nodes (231:N). */
export function buildFakeIb (root: string, hcas: number): void {
  mknod(root, 'dev/infiniband/rdma_cm', 10, 58)
  for (let i = 0; i < hcas; i++) {
    const pci = join(root, `sys/bus/pci/drivers/mlx5_core/0000:${(0x3b + i).toString(16)}:00.0`)
    for (const d of [`infiniband/mlx5_${i}`, `infiniband_verbs/uverbs${i}`, `infiniband_mad/umad${i}`, `infiniband_mad/issm${i}`]) mkdirSync(join(pci, d), { recursive: true })
    mknod(root, `dev/infiniband/uverbs${i}`, 231, 192 + i)
    mknod(root, `dev/infiniband/umad${i}`, 231, i)
    mknod(root, `dev/infiniband/issm${i}`, 231, 64 + i)
  }
}

/** Build the tree at root (created). */
export function buildFakeDriver (root: string, opts: FakeDriverOptions = {}): string {
  const gpus = opts.gpus ?? DEFAULT_GPUS
  for (const g of gpus) mknod(root, `dev/nvidia${g.minor}`, 195, g.minor)
  mknod(root, 'dev/nvidiactl', 195, 255)
  mknod(root, 'dev/nvidia-modeset', 195, 254)
  if (opts.uvm !== false) { mknod(root, 'dev/nvidia-uvm', UVM_MAJOR, 0); mknod(root, 'dev/nvidia-uvm-tools', UVM_MAJOR, 1) }
  w(root, 'proc/devices', `Character devices:\n195 nvidia-frontend\n${CAPS_MAJOR} nvidia-caps\n${UVM_MAJOR} nvidia-uvm\n`)
  w(root, 'proc/modules', `nvidia ${56000000} 2 nvidia_uvm, Live 0x0\n${opts.uvm !== false ? 'nvidia_uvm 4000000 0 - Live 0x0\n' : ''}`)
  w(root, 'proc/driver/nvidia/version', `NVRM version: NVIDIA UNIX x86_64 Kernel Module  ${FAKE_VERSION}  Tue Feb 20 00:00:00 UTC 2024\nGCC version:  gcc version 12.2.0\n`)
  w(root, 'proc/driver/nvidia/params', 'ResmanDebugLevel: 4294967295\nModifyDeviceFiles: 1\nDeviceFileUID: 0\n')
  for (const g of gpus) {
    w(root, `proc/driver/nvidia/gpus/${g.bus}/information`,
      `Model: \t\t ${g.model}\nIRQ:   \t\t 100\nGPU UUID: \t ${g.uuid}\nVideo BIOS: \t ??.??.??.??.??\nBus Type: \t PCIe\nDMA Size: \t 52 bits\nBus Location: \t ${g.bus}\nDevice Minor: \t ${g.minor}\nGPU Excluded:\t No\n`)
    for (const m of g.mig ?? []) {
      w(root, `proc/driver/nvidia/capabilities/gpu${g.minor}/mig/gi${m.gi}/access`, `DeviceFileMinor: ${m.giCap}\nDeviceFileMode: 292\nDeviceFileModify: 1\n`)
      w(root, `proc/driver/nvidia/capabilities/gpu${g.minor}/mig/gi${m.gi}/ci${m.ci}/access`, `DeviceFileMinor: ${m.ciCap}\nDeviceFileMode: 292\nDeviceFileModify: 1\n`)
      mknod(root, `dev/nvidia-caps/nvidia-cap${m.giCap}`, CAPS_MAJOR, m.giCap)
      mknod(root, `dev/nvidia-caps/nvidia-cap${m.ciCap}`, CAPS_MAJOR, m.ciCap)
    }
  }
  if ((opts.hcas ?? 0) > 0) buildFakeIb(root, opts.hcas ?? 0)
  w(root, 'usr/bin/nvidia-smi', smiScript(gpus), 0o755)
  w(root, 'usr/bin/nvidia-debugdump', '#!/bin/sh\necho debugdump\n', 0o755)
  w(root, 'usr/bin/nvidia-cuda-mps-control', '#!/bin/sh\necho mps-control\n', 0o755)
  w(root, `lib/firmware/nvidia/${FAKE_VERSION}/gsp_ga10x.bin`, 'firmware')
  if (opts.libs !== false && HAVE_GCC) {
    mkdirSync(join(root, LIBDIR), { recursive: true })
    const work = join(root, 'build')
    mkdirSync(work)
    for (const [name, soname] of Object.entries(FAKE_LIBS)) compile(root, name, soname, FAKE_VERSION, work)
    // an older driver's leftover: same SONAME family, wrong version, must not be injected
    compile(root, 'libnvidia-fbc', 'libnvidia-fbc.so.1', '470.82.01', work)
    w(root, 'etc/ld.so.conf', `${LIBDIR}\n`)
    if (IS_ROOT) execFileSync('ldconfig', ['-r', root], { stdio: 'ignore' })
  }
  return root
}
