// The contract between the pure side of the runtime (pipeline/, runtime/plan.ts: text and config in,
// data out) and the acting side (runtime/engine.ts + native/: namespaces, mounts, exec).

/** One mount operation of enroot's fstab dialect (spec §5.6), already parsed; applied inside the container's mount namespace. */
export interface MountOp {
  source: string
  /** path inside the rootfs (resolved there, confined to it: an escape fails with EXDEV) */
  target: string
  /** 'none' for binds and remounts */
  fstype: string
  /** MS_* bits other than propagation (bind, rec, rdonly, nosuid, nodev, noexec, remount, …) */
  flags: number
  /** MS_SHARED / MS_SLAVE / MS_PRIVATE / MS_UNBINDABLE, possibly with MS_REC; applied after the mount */
  propagation: number[]
  /** filesystem data: unknown options joined with ',' (mode=, size=, lowerdir=, …) */
  data: string
  /** x-create */
  create: 'none' | 'dir' | 'file' | 'auto'
  /** x-detach: umount2(target, MNT_DETACH) instead of mounting */
  detach: boolean
  /** x-move: MS_MOVE */
  move: boolean
  /** errors are warnings (nofail) … */
  nofail: boolean
  /** … and silent ones with `silent` */
  silent: boolean
  /** where it came from, for error messages: "<file>:<line>" or "--mount" */
  origin: string
}

/** An executable drop-in hook (hooks.d/*.sh) or the config script's hooks() function. */
export interface HookSpec {
  /** path of the executable, or the conf script for hooks() */
  path: string
  argv: string[]
  /** true for hooks.d/NN-name.sh files that the runtime implements itself (an admin can still override by file name) */
  builtin?: string
}

export type RootfsSource =
  | { kind: 'dir', path: string }
  /** an image file started directly: squashfuse + overlay with a tmpfs upper layer, no extraction */
  | { kind: 'squashfs', image: string }

export interface Namespaces { pid: boolean, net: boolean, ipc: boolean, uts: boolean }

/** Everything `enroot start` decided before touching the system. Built by runtime/plan.ts, executed by runtime/engine.ts. */
export interface ContainerPlan {
  rootfs: RootfsSource
  /** container name when started by name (for list/exec), undefined for an image file */
  name?: string
  /** --rw: writes reach the rootfs (a directory container); otherwise a private layer takes them */
  writable: boolean
  /** --root: map the caller to uid 0 and install the fake-root seccomp filter */
  remapRoot: boolean
  /** real root with ENROOT_ALLOW_SUPERUSER: no user namespace */
  privileged: boolean
  unshare: Namespaces
  /** host directory private to this start (0700): environment, fstab, rc, hook outputs; removed at exit */
  runtimeDir: string
  /** pass -1 entries: image fstab, mounts.d, unshare pid/net entries */
  earlyMounts: MountOp[]
  /** hooks in order: system hooks.d, user hooks.d, then the conf script's hooks() */
  hooks: HookSpec[]
  /** pass 0 entries: image fstab, mounts.d, conf mounts(), --mount (mounted after hook mounts) */
  lateMounts: MountOp[]
  /** the environment file before hooks (KEY=VALUE lines, formatted as enroot's envfmt) */
  environ: string[]
  /** environment for hooks: the enroot process environment (host env + exported config) */
  hookEnv: Record<string, string>
  /** contents of the rc script that replaces /etc/rc (--rc or rc()), if any */
  rc?: string
  /** ENROOT_LOGIN_SHELL */
  login: boolean
  command: string[]
}
