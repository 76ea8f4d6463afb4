// `enroot start` decided as data (spec §5.1-§5.5): which rootfs, which environment, which mounts in which
// pass, which hooks, which rc. Reads files (image /etc/environment and /etc/fstab, drop-ins, the config
// script's output) but mounts nothing; runtime/engine.ts executes the result.
import { mkdtempSync, readFileSync, realpathSync, rmSync, statSync } from 'node:fs'
import { childProcess } from '../util/builtins.js'
import { join } from 'node:path'
import type { Config } from '../config/load.js'
import type { ContainerPlan, RootfsSource } from './plan-types.js'
import { invalidArgument, noSuchFile, EnrootError } from '../util/errors.js'
import { loadDirectives } from '../config/load.js'
import { substitute, formatEnv, mergeEnv, cliEnv, validateEnvArgs } from '../pipeline/envfile.js'
import { parseFstab, parseMountArg, splitPasses, type FstabEntry } from '../pipeline/fstab.js'
import { checkConfScript, runConfScript, confHook, type ConfOutput } from '../pipeline/conf-script.js'
import { listDropIns } from '../pipeline/dropins.js'
import { validateName } from './names.js'
import { dataPath, isDir, isSquashfs } from './rootfs-store.js'

export interface StartOptions {
  /** NAME or IMAGE (a squashfs file) */
  rootfs: string
  conf?: string
  env?: readonly string[]
  rc?: string
  mounts?: readonly string[]
  /** --root, --rw, --pid, --net, --ipc, --uts: force their settings to y */
  root?: boolean
  rw?: boolean
  pid?: boolean
  net?: boolean
  ipc?: boolean
  uts?: boolean
  command?: readonly string[]
  /** the caller's directory: relative bind sources resolve against it */
  cwd: string
  /** effective uid of the caller (privileged mode needs 0) */
  uid: number
  /** per-start name of the runtime directory (default: this process id) */
  instance?: string
  /**
   * What a configuration script's environ() and mounts() would print, given as data by a caller that
   * builds them itself (the Slurm launcher): the same precedence as --conf, without a bash per start.
   */
  confData?: ConfData
  /** the image's /etc/environment and /etc/fstab when the caller knows them (ImportResult.files) */
  imageFiles?: { environment: string, fstab: string }
}

export interface ConfData {
  /** KEY=VALUE lines, verbatim */
  environ: readonly string[]
  /** fstab lines, not substituted */
  mounts: readonly string[]
  /** names the lines in error messages */
  origin: string
}

/**
 * Where the engine assembles an image's rootfs (squashfuse + overlay on a tmpfs at <runtimeDir>/mnt, see
 * native/src/spawn.cc): `${ENROOT_ROOTFS}` in the image's fstab names it. For a directory container it is the
 * directory itself, so volumes stay writable and persistent as with enroot.
 */
export const IMAGE_ROOT = 'mnt/root'

/** The rootfs argument: an existing squashfs file is an image; anything else is a name under the data path. */
export function resolveRootfs (arg: string, cfg: Config): { source: RootfsSource, path: string, name?: string } {
  if (arg === '') throw invalidArgument(arg)
  if (isSquashfs(arg)) return { source: { kind: 'squashfs', image: realpathSync(arg) }, path: '' }
  if (arg.includes('/')) throw invalidArgument(arg)
  const name = validateName(arg)
  const path = join(dataPath(cfg), name)
  if (!isDir(path)) throw noSuchFile(path)
  return { source: { kind: 'dir', path }, path, name }
}

/** Apply --conf directives (overwrite), then the CLI flags, which beat everything (spec §1.1). */
export function effectiveConfig (opts: StartOptions, cfg: Config, confPath?: string): Config {
  const withConf = confPath === undefined ? cfg : loadDirectives(cfg, confPath)
  const over: Record<string, string> = {}
  if (opts.root === true) over.ENROOT_REMAP_ROOT = 'y'
  if (opts.rw === true) over.ENROOT_ROOTFS_WRITABLE = 'y'
  if (opts.pid === true) over.ENROOT_UNSHARE_PID = 'y'
  if (opts.net === true) over.ENROOT_UNSHARE_NET = 'y'
  if (opts.ipc === true) over.ENROOT_UNSHARE_IPC = 'y'
  if (opts.uts === true) over.ENROOT_UNSHARE_UTS = 'y'
  return Object.keys(over).length === 0 ? withConf : withConf.with(over)
}

/**
 * The image's own /etc/environment and /etc/fstab: read from the directory, or out of the squashfs without
 * mounting it, both with one unsquashfs into a scratch directory (a process per file cost a start of an
 * image about 3 ms more). A file the image lacks reads as empty.
 */
function imageFiles (source: RootfsSource, tmp: string): { environment: string, fstab: string } {
  const rels = ['etc/environment', 'etc/fstab'] as const
  if (source.kind === 'dir') {
    const [environment, fstab] = rels.map(rel => readOrEmpty(join(source.path, rel)))
    return { environment: environment ?? '', fstab: fstab ?? '' }
  }
  let scratch: string
  try { scratch = mkdtempSync(join(tmp, 'enroot-image-files.')) } catch { scratch = mkdtempSync('/tmp/enroot-image-files.') }
  try {
    const out = join(scratch, 'x')
    childProcess().spawnSync('unsquashfs', ['-n', '-q', '-d', out, source.image, ...rels], { stdio: 'ignore' })
    return { environment: readOrEmpty(join(out, rels[0])), fstab: readOrEmpty(join(out, rels[1])) }
  } finally {
    rmSync(scratch, { recursive: true, force: true })
  }
}

const readOrEmpty = (p: string): string => { try { return readFileSync(p, 'utf8') } catch { return '' } }

/** --unshare pid/net: detach the host /proc (/sys) rbind and mount a fresh one, before the hooks. */
function unshareEntries (cfg: Config): string[] {
  const lines: string[] = []
  if (cfg.flag('ENROOT_UNSHARE_PID')) {
    lines.push('none /proc none x-create=dir,x-detach,nofail,silent 0 -1', 'proc /proc proc x-create=dir,rw,nosuid,nodev,noexec,private 0 -1')
  }
  if (cfg.flag('ENROOT_UNSHARE_NET')) {
    lines.push('none /sys none x-create=dir,x-detach,nofail,silent 0 -1', 'sysfs /sys sysfs x-create=dir,ro,nosuid,nodev,noexec,private 0 -1')
  }
  return lines
}

/** --rc: a regular file or a pipe such as <(...); its content replaces /etc/rc. */
function readRc (rc: string): string {
  try {
    // stat follows the link: /dev/fd/63 of a <(...) is a pipe, which realpath cannot resolve.
    const st = statSync(rc)
    if (!st.isFile() && !st.isFIFO()) throw new Error('not a file')
    return readFileSync(rc, 'utf8')
  } catch {
    throw noSuchFile(rc)
  }
}

export interface BuiltPlan { plan: ContainerPlan, cfg: Config }

export function buildPlan (opts: StartOptions, baseCfg: Config): BuiltPlan {
  const command = [...(opts.command ?? [])]
  // Validate everything the user typed before reading anything else. The conf script comes first: its
  // directives decide the configuration that the rest is resolved with.
  const confPath = opts.conf === undefined ? undefined : checkConfScript(opts.conf)
  const cfg = effectiveConfig(opts, baseCfg, confPath)
  const root = resolveRootfs(opts.rootfs, cfg)
  const cliMounts = (opts.mounts ?? []).map(m => parseMountArg(m, opts.cwd))
  validateEnvArgs(opts.env ?? [])
  const rcText = opts.rc === undefined ? undefined : readRc(opts.rc)

  const runtimePath = cfg.get('ENROOT_RUNTIME_PATH') ?? ''
  if (runtimePath === '') throw new EnrootError('CONFIG', 'ENROOT_RUNTIME_PATH is not set')
  const runtimeDir = join(runtimePath, opts.instance ?? String(process.pid))
  const rootfsPath = root.source.kind === 'dir' ? root.path : join(runtimeDir, IMAGE_ROOT)
  const hookEnv: Record<string, string> = { ...cfg.env, ENROOT_ROOTFS: rootfsPath }

  const conf: ConfOutput | undefined = confPath !== undefined
    ? runConfScript(confPath, command, hookEnv)
    : opts.confData === undefined ? undefined : { environ: opts.confData.environ.join('\n'), mounts: opts.confData.mounts.join('\n'), hooks: false }
  const confOrigin = confPath ?? opts.confData?.origin ?? ''
  const dropins = listDropIns(cfg.get('ENROOT_SYSCONF_PATH') ?? '', cfg.get('ENROOT_CONFIG_PATH') ?? '')

  const image = opts.imageFiles ?? imageFiles(root.source, cfg.get('ENROOT_TEMP_PATH') ?? '/tmp')

  // Environment, lowest precedence first; substitution only for the image and drop-in files.
  const environ = mergeEnv(formatEnv([
    ...substitute(image.environment, hookEnv).split('\n'),
    ...dropins.environ.flatMap(f => substitute(readOrEmpty(f), hookEnv).split('\n')),
    ...(conf?.environ ?? '').split('\n'),
    ...cliEnv(opts.env ?? [], cfg.env)
  ]))

  // Mounts: pass -1 comes from the image fstab, mounts.d and the unshare entries only; pass 0 from everything.
  const parse = (text: string, origin: string, subst: boolean): FstabEntry[] =>
    parseFstab(text, origin, subst ? { env: hookEnv, cwd: opts.cwd } : { cwd: opts.cwd })
  const initial: FstabEntry[] = [
    ...parse(image.fstab, `${rootfsPath}/etc/fstab`, true),
    ...dropins.mounts.flatMap(f => parse(readOrEmpty(f), f, true)),
    ...parse(unshareEntries(cfg).join('\n'), 'unshare', false)
  ]
  const final: FstabEntry[] = [...initial, ...(conf === undefined ? [] : parse(conf.mounts, confOrigin, false)), ...cliMounts]

  const rc = rcText ?? conf?.rc
  const plan: ContainerPlan = {
    rootfs: root.source,
    ...(root.name === undefined ? {} : { name: root.name }),
    writable: cfg.flag('ENROOT_ROOTFS_WRITABLE'),
    remapRoot: cfg.flag('ENROOT_REMAP_ROOT'),
    privileged: cfg.flag('ENROOT_ALLOW_SUPERUSER') && opts.uid === 0,
    unshare: {
      pid: cfg.flag('ENROOT_UNSHARE_PID'),
      net: cfg.flag('ENROOT_UNSHARE_NET'),
      ipc: cfg.flag('ENROOT_UNSHARE_IPC'),
      uts: cfg.flag('ENROOT_UNSHARE_UTS')
    },
    runtimeDir,
    earlyMounts: splitPasses(initial).early,
    hooks: [...dropins.hooks, ...(conf?.hooks === true ? [confHook(confPath as string, command)] : [])],
    lateMounts: splitPasses(final).late,
    environ,
    hookEnv,
    ...(rc === undefined ? {} : { rc }),
    login: cfg.flag('ENROOT_LOGIN_SHELL'),
    command
  }
  return { plan, cfg }
}
