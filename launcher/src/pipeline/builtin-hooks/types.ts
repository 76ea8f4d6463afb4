// What a built-in hook produces: the same outputs a shell hook has (lines for $ENROOT_ENVIRON, fstab lines
// for $ENROOT_MOUNTS, mounts done directly, files), as data. The engine applies them in the order below.
import type { MountOp } from '../../runtime/plan-types.js'

export interface HookContext {
  /** host path of the container rootfs, as hooks see $ENROOT_ROOTFS (mounted, writable during setup) */
  rootfs: string
  /** this start's private directory (host path) */
  runtimeDir: string
  /** the hook environment: host environment plus exported configuration (ENROOT_*, NVIDIA_*, …) */
  env: Readonly<Record<string, string>>
  /** the container environment so far (KEY=VALUE) */
  environ: readonly string[]
  /** the caller's ids outside the container */
  uid: number
  gid: number
  /** path of the terminal on stdin, when stdin is one (10-devices binds it as /dev/console) */
  stdinTty?: string
}

export interface FileOp {
  /** inRootfs: a path inside the rootfs (write confined, never through a symlink); else a host path in the runtime dir */
  path: string
  inRootfs: boolean
  content: string
  mode: number
}

export interface HookOutput {
  /** lines appended to $ENROOT_ENVIRON */
  environ: string[]
  /** files written first */
  files: FileOp[]
  /** directories created inside the rootfs when missing (mkdir -p, confined); `path` is inside the rootfs */
  dirs: Array<{ path: string, mode: number }>
  /** mounts done directly by the hook (enroot-mount --root $ENROOT_ROOTFS -), in order, before the next hook */
  mount: MountOp[]
  /** symlinks created first, in the runtime directory (host path → link text) */
  links: Array<{ path: string, target: string }>
  /** entries appended to $ENROOT_MOUNTS: mounted after all hooks, before the user's mounts */
  fstab: MountOp[]
}

export const emptyOutput = (): HookOutput => ({ environ: [], files: [], dirs: [], links: [], mount: [], fstab: [] })

export const flag = (env: Readonly<Record<string, string>>, key: string): boolean => (env[key] ?? '') !== ''
