// NVIDIA_DRIVER_CAPABILITIES → what the driver must provide in the container: libraries (by name, without
// .so), binaries, device nodes and IPC paths. The lists follow libnvidia-container's (nvc_info.c), which is
// what images built for nvidia-docker and enroot expect to find (spec §10.2).
import { EnrootError } from '../../util/errors.js'

export const CAPABILITIES = ['compute', 'compat32', 'display', 'graphics', 'utility', 'video', 'ngx'] as const
export type Capability = typeof CAPABILITIES[number]

/**
 * enroot's default is `utility` (nvidia-smi and NVML only); `all` means every capability. Unlike enroot we
 * accept `ngx` (enroot's hook rejects it because its nvidia-container-cli call has no flag for it).
 */
export function parseCapabilities (value: string | undefined): Set<Capability> {
  const v = value === undefined || value === '' ? 'utility' : value
  const out = new Set<Capability>()
  for (const c of v.split(',').map(s => s.trim()).filter(s => s !== '')) {
    if (c === 'all') { for (const a of CAPABILITIES) out.add(a); continue }
    if (!(CAPABILITIES as readonly string[]).includes(c)) {
      throw new EnrootError('HOOK', `Unknown NVIDIA driver capability: ${c}`,
        { hint: `NVIDIA_DRIVER_CAPABILITIES takes a comma-separated list of: all, ${CAPABILITIES.join(', ')}` })
    }
    out.add(c as Capability)
  }
  return out
}

const UTILITY_LIBS = ['libnvidia-ml', 'libnvidia-cfg', 'libnvidia-nscq']
const COMPUTE_LIBS = [
  'libcuda', 'libcudadebugger', 'libnvidia-opencl', 'libnvidia-gpucomp', 'libnvidia-ptxjitcompiler',
  'libnvidia-fatbinaryloader', 'libnvidia-allocator', 'libnvidia-compiler', 'libnvidia-pkcs11',
  'libnvidia-pkcs11-openssl3', 'libnvidia-nvvm', 'libnvidia-tileiras'
]
const VIDEO_LIBS = ['libvdpau_nvidia', 'libnvidia-encode', 'libnvidia-opticalflow', 'libnvcuvid']
const GRAPHICS_LIBS = [
  'libnvidia-eglcore', 'libnvidia-glcore', 'libnvidia-tls', 'libnvidia-glsi', 'libnvidia-fbc', 'libnvidia-ifr',
  'libnvidia-rtcore', 'libnvoptix', 'libGLX_nvidia', 'libEGL_nvidia', 'libGLESv2_nvidia', 'libGLESv1_CM_nvidia',
  'libnvidia-glvkspirv', 'libnvidia-cbl', 'libnvidia-egl-gbm', 'libnvidia-egl-wayland'
]
const NGX_LIBS = ['libnvidia-ngx']

/** Library names for the capabilities (video needs the compute libraries, display the graphics ones). */
export function libraryNames (caps: ReadonlySet<Capability>): string[] {
  const out: string[] = []
  const add = (names: readonly string[]): void => { for (const n of names) if (!out.includes(n)) out.push(n) }
  if (caps.has('utility')) add(UTILITY_LIBS)
  if (caps.has('compute') || caps.has('video')) add(COMPUTE_LIBS)
  if (caps.has('video')) add(VIDEO_LIBS)
  if (caps.has('graphics') || caps.has('display')) add(GRAPHICS_LIBS)
  if (caps.has('ngx')) add(NGX_LIBS)
  return out
}

/** Binaries, bound into the container's /usr/bin. */
export function binaryNames (caps: ReadonlySet<Capability>): string[] {
  const out: string[] = []
  if (caps.has('utility')) out.push('nvidia-smi', 'nvidia-debugdump', 'nvidia-persistenced', 'nv-fabricmanager')
  if (caps.has('compute')) out.push('nvidia-cuda-mps-control', 'nvidia-cuda-mps-server')
  return out
}

/** Control device nodes (the per-GPU /dev/nvidiaN come from the device selection). */
export function controlDevices (caps: ReadonlySet<Capability>): string[] {
  const out = ['nvidiactl']
  if (caps.has('compute')) out.push('nvidia-uvm', 'nvidia-uvm-tools')
  if (caps.has('display')) out.push('nvidia-modeset')
  return out
}

/** Optional host paths bound at the same place: sockets, GDRCopy, IMEX channels, profiles, ICD files. */
export function extraPaths (caps: ReadonlySet<Capability>, mpsPipeDir: string): string[] {
  const out: string[] = []
  if (caps.has('utility')) out.push('/var/run/nvidia-persistenced/socket', '/var/run/nvidia-fabricmanager/socket')
  if (caps.has('compute')) out.push(mpsPipeDir, '/dev/gdrdrv', '/dev/nvidia-caps-imex-channels')
  if (caps.has('graphics') || caps.has('display')) {
    out.push('/etc/nvidia/nvidia-application-profiles-rc.d', '/usr/share/glvnd/egl_vendor.d/10_nvidia.json',
      '/usr/share/vulkan/icd.d/nvidia_icd.json', '/usr/share/vulkan/implicit_layer.d/nvidia_layers.json',
      '/usr/share/egl/egl_external_platform.d/15_nvidia_gbm.json')
  }
  if (caps.has('ngx')) out.push('/usr/share/nvidia/ngx')
  return out
}
