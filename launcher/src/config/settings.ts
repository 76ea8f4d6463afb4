// The one table of settings: every ENROOT_* key, its default and its documentation.
// etc/enroot.conf is generated from this table (scripts/gen-conf.mjs), and `enroot info` lists it.

export interface DefaultContext {
  env: Readonly<Record<string, string | undefined>>
  uid: number
  nproc: number
  sysconfdir: string
  libdir: string
  /** whether a program is on PATH (used for ENROOT_GZIP_PROGRAM) */
  onPath: (prog: string) => boolean
}

export interface Setting {
  key: string
  /** the default as enroot.conf documents it */
  confDefault: string
  /** the default as computed for this process; undefined leaves the key unset */
  value: (ctx: DefaultContext, cur: Readonly<Record<string, string | undefined>>) => string | undefined
  doc: string
  section: 'paths' | 'import' | 'runtime' | 'bundle' | 'hooks' | 'network'
}

const fixed = (v: string) => () => v
const unset = () => undefined
const under = (base: string, sub: string) => (_: DefaultContext, cur: Readonly<Record<string, string | undefined>>) => `${cur[base] ?? ''}${sub}`

export const SETTINGS: readonly Setting[] = [
  { key: 'ENROOT_LIBRARY_PATH', section: 'paths', confDefault: '@libdir@', value: (c) => c.libdir, doc: 'Path to the library sources and helpers' },
  { key: 'ENROOT_SYSCONF_PATH', section: 'paths', confDefault: '@sysconfdir@', value: (c) => c.sysconfdir, doc: 'Path to system configuration (environ.d, mounts.d, hooks.d)' },
  { key: 'ENROOT_RUNTIME_PATH', section: 'paths', confDefault: '${XDG_RUNTIME_DIR}/enroot', value: under('XDG_RUNTIME_DIR', '/enroot'), doc: 'Working directory for enroot, private to each start' },
  { key: 'ENROOT_CONFIG_PATH', section: 'paths', confDefault: '${XDG_CONFIG_HOME}/enroot', value: under('XDG_CONFIG_HOME', '/enroot'), doc: 'User configuration (environ.d, mounts.d, hooks.d, .credentials)' },
  { key: 'ENROOT_CACHE_PATH', section: 'paths', confDefault: '${XDG_CACHE_HOME}/enroot', value: under('XDG_CACHE_HOME', '/enroot'), doc: 'Image cache: blobs by digest and converted images; may live on a shared filesystem' },
  { key: 'ENROOT_DATA_PATH', section: 'paths', confDefault: '${XDG_DATA_HOME}/enroot', value: under('XDG_DATA_HOME', '/enroot'), doc: 'Container root filesystems' },
  { key: 'ENROOT_TEMP_PATH', section: 'paths', confDefault: '${TMPDIR:-/tmp}', value: (c) => c.env.TMPDIR !== undefined && c.env.TMPDIR !== '' ? c.env.TMPDIR : '/tmp', doc: 'Temporary directory for import, export and bundle' },
  { key: 'ENROOT_GZIP_PROGRAM', section: 'import', confDefault: 'pigz', value: (c) => c.onPath('pigz') ? 'pigz' : 'gzip', doc: 'Gzip program used to decompress layers when the built-in decoder is not used' },
  { key: 'ENROOT_ZSTD_OPTIONS', section: 'import', confDefault: '-1', value: fixed('-1'), doc: 'Options passed to zstd when compressing' },
  { key: 'ENROOT_SQUASH_OPTIONS', section: 'import', confDefault: '-comp zstd -Xcompression-level 1', value: fixed('-comp zstd -Xcompression-level 1'), doc: 'Options passed to the squashfs writer (mksquashfs syntax)' },
  { key: 'ENROOT_MAX_PROCESSORS', section: 'import', confDefault: '$(nproc)', value: (c) => String(c.nproc), doc: 'Maximum number of processors to use for parallel tasks (0 means unlimited)' },
  { key: 'ENROOT_MAX_CONNECTIONS', section: 'network', confDefault: '10', value: fixed('10'), doc: 'Maximum number of concurrent connections (0 means unlimited)' },
  { key: 'ENROOT_CONNECT_TIMEOUT', section: 'network', confDefault: '30', value: fixed('30'), doc: 'Maximum time in seconds to wait for connections establishment (0 means unlimited)' },
  { key: 'ENROOT_TRANSFER_TIMEOUT', section: 'network', confDefault: '0', value: fixed('0'), doc: 'Maximum time in seconds to wait for network operations to complete (0 means unlimited)' },
  { key: 'ENROOT_TRANSFER_RETRIES', section: 'network', confDefault: '0', value: fixed('0'), doc: 'Number of times network operations should be retried, with exponential backoff' },
  { key: 'ENROOT_LOGIN_SHELL', section: 'runtime', confDefault: 'true', value: fixed('true'), doc: 'Use a login shell to run the container initialization' },
  { key: 'ENROOT_ALLOW_SUPERUSER', section: 'runtime', confDefault: 'false', value: fixed('false'), doc: 'Allow root to retain his superuser privileges inside containers' },
  { key: 'ENROOT_ALLOW_HTTP', section: 'network', confDefault: 'false', value: fixed('false'), doc: 'Use HTTP for outgoing requests instead of HTTPS (UNSECURE!)' },
  { key: 'ENROOT_ROOTFS_WRITABLE', section: 'runtime', confDefault: 'false', value: fixed('false'), doc: 'Make the container root filesystem writable by default' },
  { key: 'ENROOT_REMAP_ROOT', section: 'runtime', confDefault: 'false', value: fixed('false'), doc: 'Remap the current user to root inside containers by default' },
  { key: 'ENROOT_NATIVE_OVERLAYFS', section: 'runtime', confDefault: 'true', value: fixed('true'), doc: 'Use the kernel overlay filesystem (in a user namespace) instead of fuse-overlayfs' },
  { key: 'ENROOT_BUNDLE_ALL', section: 'bundle', confDefault: 'false', value: fixed('false'), doc: 'Include user-specific configuration inside bundles by default' },
  { key: 'ENROOT_BUNDLE_CHECKSUM', section: 'bundle', confDefault: 'false', value: fixed('false'), doc: 'Generate an embedded checksum inside bundles by default' },
  { key: 'ENROOT_FORCE_OVERRIDE', section: 'runtime', confDefault: 'false', value: fixed('false'), doc: 'Always use --force on command invocations' },
  { key: 'ENROOT_MOUNT_HOME', section: 'hooks', confDefault: 'false', value: unset, doc: 'Mount the current user\'s home directory by default' },
  { key: 'ENROOT_RESTRICT_DEV', section: 'hooks', confDefault: 'false', value: unset, doc: 'Restrict /dev inside the container to a minimal set of devices' },
  { key: 'ENROOT_DRIVER_ROOT', section: 'hooks', confDefault: '/', value: fixed('/'), doc: 'Where the GPU and InfiniBand hooks find the host driver (/dev, /proc/driver/nvidia, libraries, /sys); only tests change it' },
  { key: 'ENROOT_UNSHARE_PID', section: 'runtime', confDefault: 'false', value: unset, doc: 'Start containers in a new PID namespace' },
  { key: 'ENROOT_UNSHARE_NET', section: 'runtime', confDefault: 'false', value: unset, doc: 'Start containers in a new network namespace (loopback only)' },
  { key: 'ENROOT_UNSHARE_IPC', section: 'runtime', confDefault: 'false', value: unset, doc: 'Start containers in a new IPC namespace (private /dev/shm)' },
  { key: 'ENROOT_UNSHARE_UTS', section: 'runtime', confDefault: 'false', value: unset, doc: 'Start containers in a new UTS namespace' },
  { key: 'ENROOT_LOCK_TIMEOUT', section: 'import', confDefault: '600', value: fixed('600'), doc: 'Seconds an importer waits for another importer of the same image before giving up (0 means forever)' },
  { key: 'ENROOT_LOCK_STALE', section: 'import', confDefault: '30', value: fixed('30'), doc: 'Seconds without a heartbeat after which a cache lock held by a dead importer is taken over' }
]

export const SETTING_KEYS: ReadonlySet<string> = new Set(SETTINGS.map(s => s.key))

/** XDG defaults enroot computes before its own keys. */
export const XDG_DEFAULTS: ReadonlyArray<[string, (home: string, uid: number) => string]> = [
  ['XDG_DATA_HOME', (h) => `${h}/.local/share`],
  ['XDG_CONFIG_HOME', (h) => `${h}/.config`],
  ['XDG_CACHE_HOME', (h) => `${h}/.cache`]
]
