// `enroot bundle` decided as data (spec §8.1): the output and target names, the description, which
// compressor writes the payload and which one the .run will call back, what --all embeds. Reads nothing
// and runs nothing: the command hands in what it looked up (the image's superblock, what is on PATH).
import { basename, resolve } from 'node:path'
import type { Config } from '../config/load.js'
import { defaultName, validateName } from '../runtime/names.js'
import { invalidArgument } from '../util/errors.js'

/** What `unsquashfs -s` says about an image. */
export interface Superblock {
  /** gzip, lzo, lz4, xz, zstd, lzma */
  compression: string
  /** false when mksquashfs ran with -noD ("Data is uncompressed") */
  dataCompressed: boolean
}

export function parseSuperblock (text: string): Superblock | undefined {
  const comp = /^Compression (\S+)$/m.exec(text)?.[1]
  if (comp === undefined) return undefined
  return { compression: comp, dataCompressed: !/^Data is uncompressed$/m.test(text) }
}

export interface CompressionPlan {
  /** what `-i` shows as Compression: gzip, xz, zstd, lzo, lz4 or none */
  name: string
  /** the compressor, stdin to stdout; empty for none */
  compress: string[]
  /** the command the .run pipes the payload through (`cat` for none) */
  decompress: string
  /** the image's compression, when its compressor is missing here and gzip is used instead */
  fallbackFrom?: string
}

export interface CompressionContext {
  onPath: (prog: string) => boolean
  /** ENROOT_MAX_PROCESSORS: 0 lets the compressor decide */
  threads: number
  /** ENROOT_GZIP_PROGRAM: pigz or gzip */
  gzipProgram: string
}

function gzipPlan (ctx: CompressionContext): CompressionPlan {
  const pigz = ctx.gzipProgram === 'pigz' && ctx.onPath('pigz')
  // -n: no name or time stamp in the gzip header, so that SOURCE_DATE_EPOCH gives identical bundles
  const compress = pigz ? ['pigz', '-n', '-c', ...(ctx.threads > 0 ? ['-p', String(ctx.threads)] : [])] : ['gzip', '-n', '-c']
  return { name: 'gzip', compress, decompress: 'gzip -dc' }
}

/** The payload is compressed as the image was (enroot's rule); the compressor's default level, our threads. */
export function compressionPlan (sb: Superblock, ctx: CompressionContext): CompressionPlan {
  if (!sb.dataCompressed) return { name: 'none', compress: [], decompress: 'cat' }
  const t = String(ctx.threads)
  const table: Record<string, CompressionPlan> = {
    xz: { name: 'xz', compress: ['xz', '-c', '-T', t], decompress: 'xz -dc' },
    lzma: { name: 'xz', compress: ['xz', '-c', '-T', t], decompress: 'xz -dc' },
    zstd: { name: 'zstd', compress: ['zstd', '-q', '-c', `-T${t}`], decompress: 'zstd -dc' },
    lzo: { name: 'lzo', compress: ['lzop', '-c'], decompress: 'lzop -dc' },
    lz4: { name: 'lz4', compress: ['lz4', '-q', '-c'], decompress: 'lz4 -dc' }
  }
  if (sb.compression === 'gzip') return gzipPlan(ctx)
  const p = table[sb.compression]
  if (p !== undefined && ctx.onPath(p.compress[0] as string)) return p
  return { ...gzipPlan(ctx), fallbackFrom: sb.compression }
}

export interface BundleOptions {
  /** the image, resolved */
  image: string
  output?: string
  target?: string
  desc?: string
  all: boolean
  checksum: boolean
  force: boolean
  cwd: string
}

export interface BundlePlan {
  image: string
  /** absolute */
  output: string
  /** as the .run resolves it at run time, against its current directory (--keep) */
  target: string
  description: string
  checksum: boolean
  force: boolean
  compression: CompressionPlan
  /** --mtime for every archive member */
  sourceDateEpoch?: number
  tempPath: string
  /** where the system drop-ins are copied from */
  sysconfPath: string
  /** --all: the user's drop-ins (ENROOT_CONFIG_PATH) and the settings written to /.enroot/etc/config */
  all?: { configPath: string, settings: Array<[string, string]> }
}

/** `<basename IMAGE minus .sqsh>.run` */
export const defaultOutput = (image: string): string => `${defaultName(image)}.run`

/** `<basename OUTPUT minus .run>` */
export function defaultTarget (output: string): string {
  const base = basename(output)
  return base.endsWith('.run') && base !== '.run' ? base.slice(0, -'.run'.length) : base
}

/** Settings a bundle built with --all carries: every ENROOT_* one except paths (the host's) and the version. */
export const embeddedSettings = (cfg: Config): Array<[string, string]> =>
  cfg.exported().filter(([k]) => !k.endsWith('_PATH') && k !== 'ENROOT_VERSION')

export function bundlePlan (opts: BundleOptions, cfg: Config, sb: Superblock, ctx: CompressionContext): BundlePlan {
  const output = resolve(opts.cwd, opts.output ?? defaultOutput(opts.image))
  const target = (opts.target ?? defaultTarget(output)).replace(/(.)\/+$/, '$1')
  // the temporary extraction is named after the target's last component: it must be a valid name
  try { validateName(basename(target)) } catch { throw invalidArgument(opts.target ?? target) }
  const epoch = cfg.env.SOURCE_DATE_EPOCH
  if (epoch !== undefined && epoch !== '' && !/^\d+$/.test(epoch)) throw invalidArgument(`SOURCE_DATE_EPOCH=${epoch}`)
  const all = opts.all || cfg.flag('ENROOT_BUNDLE_ALL')
  return {
    image: opts.image,
    output,
    target,
    description: opts.desc ?? 'none',
    checksum: opts.checksum || cfg.flag('ENROOT_BUNDLE_CHECKSUM'),
    force: opts.force || cfg.flag('ENROOT_FORCE_OVERRIDE'),
    compression: compressionPlan(sb, ctx),
    ...(epoch === undefined || epoch === '' ? {} : { sourceDateEpoch: Number(epoch) }),
    tempPath: cfg.get('ENROOT_TEMP_PATH') ?? '/tmp',
    sysconfPath: cfg.get('ENROOT_SYSCONF_PATH') ?? '',
    ...(all ? { all: { configPath: cfg.get('ENROOT_CONFIG_PATH') ?? '', settings: embeddedSettings(cfg) } } : {})
  }
}
