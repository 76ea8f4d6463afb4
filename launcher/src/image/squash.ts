// The flattened layer stream goes straight into tar2sqfs (squashfs-tools-ng): no extraction, no overlay
// mount, no capabilities. ENROOT_SQUASH_OPTIONS keeps mksquashfs syntax (users have it in their
// enroot.conf) and is translated here; options without an equivalent are ignored with one warning each.
//
//   mksquashfs                      tar2sqfs
//   -comp C                         --compressor C (default gzip, as mksquashfs; tar2sqfs's own is xz)
//   -b SIZE[K|M]                    --block-size BYTES
//   -Xcompression-level N           -X level=N          -Xalgorithm (lzo)     lzo1x_999 only: others → level 1
//   -Xhc (lz4)                      -X hc               -Xdict-size S (xz)    -X dictsize=S
//   -Xwindow-size N (gzip)          -X window=N
//   -noD / -noDataCompression       no equivalent (tar2sqfs always compresses data). The intent, speed,
//                                   is kept with the compressor's fastest setting (level 1; lzo stays
//                                   lzo1x_999 as tar2sqfs 1.2 refuses the other lzo algorithms;
//                                   xz level 0), which needs no support from readers.
//   -no-xattrs                      --no-xattr          -exports              --exportable
//   -processors N                   -j N (else ENROOT_MAX_PROCESSORS; 0 means all CPUs)
//   -all-time / -mkfs-time E        as SOURCE_DATE_EPOCH
//   -exit-on-error                  --no-skip (always on: nothing is skipped silently)
//   -all-root -root-owned -noappend -no-progress -progress -quiet -xattrs -no-exports: already so
//   -noI -noF -noX -no-fragments -always-use-fragments -no-duplicates -no-sparse …: not supported
import { spawn } from 'node:child_process'
import { rm, statfs } from 'node:fs/promises'
import { dirname } from 'node:path'
import { availableParallelism } from 'node:os'
import { flattenLayers, layersSize, type FlattenStats, type LayerSource } from './flatten.js'
import { TarSink } from './tar-writer.js'
import type { ExtraFile, ProgressEvent } from './types.js'
import { EnrootError } from '../util/errors.js'
import { log } from '../util/log.js'
import { onInterrupt } from '../cache/interrupt.js'

export interface SquashPlan {
  compressor: string
  /** -X key=value options of the compressor */
  extra: string[]
  blockSize?: number
  noXattr: boolean
  exportable: boolean
  processors?: number
  epoch?: number
  /** options with no tar2sqfs equivalent */
  ignored: string[]
}

const COMPRESSORS = new Set(['gzip', 'lzo', 'lz4', 'xz', 'zstd', 'lzma'])
const NOOP = new Set(['-all-root', '-root-owned', '-noappend', '-no-progress', '-progress', '-quiet', '-xattrs', '-no-exports', '-exit-on-error', '-no-recovery', '-info'])
const FAST: Record<string, string> = { lzo: 'level=1', gzip: 'level=1', zstd: 'level=1', xz: 'level=0', lzma: 'level=0' }

/** mksquashfs-syntax options → a plan for tar2sqfs. Throws 'CONFIG' for values that cannot work. */
export function translateSquashOptions (options: string): SquashPlan {
  const argv = options.split(/\s+/).filter(a => a !== '')
  const plan: SquashPlan = { compressor: 'gzip', extra: [], noXattr: false, exportable: false, ignored: [] }
  let fast = false
  const bad = (what: string): EnrootError => new EnrootError('CONFIG', `Invalid ENROOT_SQUASH_OPTIONS: ${what}`)
  for (let i = 0; i < argv.length; i++) {
    const opt = argv[i] as string
    const value = (): string => {
      const v = argv[++i]
      if (v === undefined) throw bad(`${opt} needs a value`)
      return v
    }
    const int = (): number => {
      const v = value()
      if (!/^\d+$/.test(v)) throw bad(`${opt} ${v}`)
      return Number(v)
    }
    switch (opt) {
      case '-comp': plan.compressor = value(); if (!COMPRESSORS.has(plan.compressor)) throw bad(`unknown compressor ${plan.compressor}`); break
      case '-b': plan.blockSize = parseSize(value(), bad); break
      case '-Xcompression-level': plan.extra.push(`level=${int()}`); break
      case '-Xalgorithm': {
        // tar2sqfs 1.2 refuses every lzo algorithm but lzo1x_999 ("creating compressor: unknown or
        // not supported"); the lzo1x_1* ones ask for speed, which level 1 of lzo1x_999 gives.
        const algorithm = value()
        if (algorithm === 'lzo1x_999') break
        plan.ignored.push(`-Xalgorithm ${algorithm}`)
        fast = true
        break
      }
      case '-Xdict-size': plan.extra.push(`dictsize=${value()}`); break
      case '-Xwindow-size': plan.extra.push(`window=${int()}`); break
      case '-Xhc': plan.extra.push('hc'); break
      case '-noD': case '-noDataCompression': fast = true; break
      case '-no-xattrs': plan.noXattr = true; break
      case '-exports': plan.exportable = true; break
      case '-processors': plan.processors = int(); break
      case '-all-time': case '-mkfs-time': plan.epoch = int(); break
      default:
        if (NOOP.has(opt)) break
        plan.ignored.push(opt)
    }
  }
  const fastSetting = FAST[plan.compressor]
  if (fast && fastSetting !== undefined && !plan.extra.some(x => x.startsWith(fastSetting.split('=')[0] as string))) plan.extra.push(fastSetting)
  return plan
}

function parseSize (v: string, bad: (w: string) => EnrootError): number {
  const m = /^(\d+)([kKmM]?)$/.exec(v)
  if (m === null) throw bad(`-b ${v}`)
  const n = Number(m[1]) * (m[2] === '' ? 1 : /[kK]/.test(m[2] as string) ? 1024 : 1024 * 1024)
  if (n < 4096 || n > 1024 * 1024 || (n & (n - 1)) !== 0) throw bad(`-b ${v}: the block size must be a power of two between 4K and 1M`)
  return n
}

const warned = new Set<string>()

export interface BuildSquashfsOptions {
  /**
   * bottom-most first (manifest order); a promise for a layer still downloading. A rejected promise
   * stops the conversion at once (tar2sqfs is killed) and is the error buildSquashfs rejects with.
   */
  layers: readonly LayerSource[]
  /** compressed size of all layers, for progress; else the layer files are stat'ed (after they all exist) */
  totalBytes?: number
  extraFiles: readonly ExtraFile[]
  /** a temporary path chosen by the caller; removed again on failure */
  output: string
  /** ENROOT_SQUASH_OPTIONS */
  squashOptions: string
  /** ENROOT_MAX_PROCESSORS (0: all) */
  processors: number
  /** scratch space (ENROOT_TEMP_PATH or a directory in it) */
  tmpdir: string
  /** SOURCE_DATE_EPOCH, when set: mkfs time and every file's mtime */
  sourceDateEpoch?: number
  onProgress?: (e: ProgressEvent) => void
}

export async function buildSquashfs (o: BuildSquashfsOptions): Promise<FlattenStats> {
  const plan = translateSquashOptions(o.squashOptions)
  for (const opt of plan.ignored) {
    if (!warned.has(opt)) { warned.add(opt); log.warn(`ENROOT_SQUASH_OPTIONS: ${opt} has no equivalent in tar2sqfs, ignored`) }
  }
  const epoch = plan.epoch ?? o.sourceDateEpoch
  const jobs = plan.processors ?? o.processors
  const args = ['--quiet', '--force', '--no-skip', '--compressor', plan.compressor,
    '--num-jobs', String(jobs > 0 ? jobs : availableParallelism()),
    '--defaults', `mode=0755,mtime=${epoch ?? Math.floor(Date.now() / 1000)}`]
  if (plan.extra.length > 0) args.push('--comp-extra', plan.extra.join(','))
  if (plan.blockSize !== undefined) args.push('--block-size', String(plan.blockSize))
  if (plan.noXattr) args.push('--no-xattr')
  if (plan.exportable) args.push('--exportable')
  args.push(o.output)
  log.debug(`tar2sqfs ${args.join(' ')}`)

  // tar2sqfs takes the superblock time from SOURCE_DATE_EPOCH, else from --defaults mtime.
  const env = { ...process.env }
  delete env.SOURCE_DATE_EPOCH
  if (epoch !== undefined) env.SOURCE_DATE_EPOCH = String(epoch)
  // Before the spawn: nothing to clean up if a layer is missing.
  const total = o.totalBytes ?? await layersSize(await Promise.all(o.layers))
  const child = spawn('tar2sqfs', args, { stdio: ['pipe', 'ignore', 'pipe'], env })
  // A signal that ends us (scancel's SIGTERM) must not leave tar2sqfs writing a partial image after the
  // cache's clean-up removed it (cleanups run newest first: this kill before the store's unlink).
  const forgetChild = onInterrupt(() => { child.kill('SIGKILL') })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => { if (stderr.length < 65536) stderr += d.toString() })
  child.stdin.on('error', () => {}) // EPIPE: the exit status below explains it
  const exited = new Promise<{ code: number | null, error?: Error }>((resolve) => {
    child.on('error', (error) => resolve({ code: null, error }))
    child.on('close', (code) => resolve({ code }))
  })

  // A download that fails stops the conversion now, not when the flattener reaches that layer.
  let inputError: unknown
  const stop = new AbortController()
  Promise.all(o.layers).catch((err: unknown) => { inputError ??= err; stop.abort(err); child.kill('SIGKILL') })

  let read = 0
  const onRead = o.onProgress === undefined
    ? undefined
    : (n: number): void => { read += n; o.onProgress?.({ kind: 'convert-bytes', bytes: read, total }) }
  const sink = new TarSink(child.stdin)
  let stats: FlattenStats | undefined
  let failure: unknown
  try {
    stats = await flattenLayers({ layers: o.layers, extraFiles: o.extraFiles, sink, tmpdir: o.tmpdir, onRead, signal: stop.signal, ...(epoch !== undefined ? { fixedTime: epoch } : {}) })
    await sink.end()
  } catch (err) {
    failure = err
    child.kill('SIGKILL')
  }
  const { code, error } = await exited
  forgetChild()
  if (failure === undefined && inputError === undefined && code === 0 && stats !== undefined) {
    if (stderr.trim() !== '') log.debug(`tar2sqfs: ${stderr.trim()}`)
    return stats
  }

  // tar2sqfs reports a failed write only as "I/O error": look at the free space while the partial
  // image still fills the disk. (Quotas do not show in statfs; their EDQUOT stays an IMAGE error.)
  const full = /I\/O error|no space left/i.test(stderr) && await nearlyFull(o.output)
  await rm(o.output, { force: true })
  if (error !== undefined) {
    throw new EnrootError('UNSUPPORTED', 'Command not found: tar2sqfs', { cause: error, hint: 'Install squashfs-tools-ng (the tar2sqfs command).' })
  }
  // Our own errors (a hostile entry, a corrupt layer) win, unless we only saw tar2sqfs go away.
  const pipeGone = ['EPIPE', 'ERR_STREAM_DESTROYED', 'ECONNRESET'].includes((failure as NodeJS.ErrnoException)?.code ?? '')
  if (failure !== undefined && !pipeGone && failure !== inputError) throw failure
  if (inputError !== undefined) throw inputError
  if (failure !== undefined && !(pipeGone && code !== 0)) throw failure
  if (full) {
    throw new EnrootError('SPACE', `No space left on device: ${o.output}`, { hint: 'Free some space, or import to a file system with more room (-o).' })
  }
  throw new EnrootError('IMAGE', `Could not create squashfs ${o.output}: tar2sqfs exited with status ${String(code)}: ${stderr.trim().split('\n').slice(-3).join(' / ')}`)
}

async function nearlyFull (output: string): Promise<boolean> {
  try {
    const s = await statfs(dirname(output))
    return s.bavail * s.bsize < 4 * 1024 * 1024
  } catch { return false }
}
