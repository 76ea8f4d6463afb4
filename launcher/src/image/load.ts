// `enroot load docker://…` (spec §2.5): a registry image straight to a container rootfs in
// $ENROOT_DATA_PATH, with no squashfs in between.
//
// enroot mounts an overlay of the extracted layers in a user namespace and copies it out with tar, which
// needs unprivileged overlayfs (ENROOT_NATIVE_OVERLAYFS). We need neither: the blobs come through the
// same cache as `import`, the flattener merges them into one tar stream (whiteouts applied, hostile
// entries refused), and extract.ts writes that stream as the invoking user, confined to the rootfs.
// The existing rootfs (with --force) is removed only once the image has resolved, so a mistyped URI does
// not destroy it; a failed or interrupted load removes what it made.
import { makeDirsAsync } from '../util/fs.js'
import { promises as fsp, rmSync } from 'node:fs'
import { PassThrough } from 'node:stream'
import type { Config } from '../config/load.js'
import { fileExists, invalidArgument, fromSystemError } from '../util/errors.js'
import { log } from '../util/log.js'
import { openConfiguredCache } from '../cache/store.js'
import { onInterrupt } from '../cache/interrupt.js'
import { containerPath, dataPath, removeTree } from '../runtime/rootfs-store.js'
import { parseImageUri, defaultImportName, canonicalUri } from './uri.js'
import { readCredentialsText } from './credentials.js'
import { hostArch, parseArch } from './platform.js'
import { RegistryClient } from './registry.js'
import { imageFiles } from './image-files.js'
import { resolveImage, startLayerDownloads } from './import.js'
import { flattenLayers } from './flatten.js'
import { TarSink } from './tar-writer.js'
import { extractTar, type ExtractStats } from './extract.js'
import type { LayerFile, ProgressEvent } from './types.js'

export interface LoadRequest {
  uri: string
  /** --arch; the host's by default */
  arch?: string
  /** --name; the import file name without .sqsh by default */
  name?: string
  /** --force or ENROOT_FORCE_OVERRIDE: replace an existing rootfs */
  force: boolean
  onProgress?: (e: ProgressEvent) => void
}

export async function loadImage (cfg: Config, req: LoadRequest): Promise<{ rootfs: string, stats: ExtractStats }> {
  // enroot's load takes docker:// only (runtime::load).
  if (!req.uri.startsWith('docker://')) throw invalidArgument(req.uri)
  const ref = parseImageUri(req.uri, { credentialsText: readCredentialsText(cfg.get('ENROOT_CONFIG_PATH') ?? '') })
  const rootfs = containerPath(cfg, req.name ?? defaultImportName(ref).replace(/\.sqsh$/, ''))
  const exists = async (): Promise<boolean> => await fsp.lstat(rootfs).then(() => true, () => false)
  if (!req.force && await exists()) throw fileExists(rootfs)
  const arch = req.arch ?? hostArch()
  parseArch(arch) // an unsupported --arch fails before anything is made
  const progress = req.onProgress ?? (() => {})

  const { store, scratch } = await openConfiguredCache(cfg)
  let made = false
  const forget = onInterrupt(() => {
    rmSync(scratch, { recursive: true, force: true })
    if (made) removeTree(rootfs)
  })
  const client = RegistryClient.fromConfig(ref, cfg)
  const stop = new AbortController()
  let downloads: Promise<unknown> = Promise.resolve()
  try {
    const { resolved, config } = await resolveImage(store, client, arch, progress)
    const layers = startLayerDownloads(cfg, store, client, resolved, progress)
    downloads = layers.settled
    // A failed download stops the extraction now, not when the flattener reaches that layer.
    Promise.all(layers.files).catch((err: unknown) => { stop.abort(err) })

    if (await exists()) {
      log.info(`Removing existing root filesystem ${rootfs}`)
      removeTree(rootfs)
    }
    await makeDirsAsync(dataPath(cfg), 0o700)
    await fsp.mkdir(rootfs, { mode: 0o755 }).catch((err: unknown) => { throw fromSystemError(err, rootfs) })
    made = true
    await makeDirsAsync(scratch, 0o700)
    progress({ kind: 'phase', phase: 'convert' })
    log.info('Extracting image layers...')
    const stats = await flattenInto(rootfs, layers.files, imageFiles(config, canonicalUri(ref)), scratch, stop.signal)
    made = false
    return { rootfs, stats }
  } catch (err) {
    stop.abort(err)
    // A half-made rootfs would later start as if it were complete.
    if (made) removeTree(rootfs)
    made = false
    throw err
  } finally {
    // Never close the client under a running download; they finish into the cache for the next try.
    await downloads
    await client.close().catch(() => {})
    rmSync(scratch, { recursive: true, force: true })
    forget()
  }
}

/**
 * flattener → tar stream → extractor, running together. The first failure wins and stops the other side:
 * destroying the pipe makes the flattener's next write fail (EPIPE) and the extractor's read end.
 */
async function flattenInto (rootfs: string, layers: Array<Promise<LayerFile>>, extraFiles: ReturnType<typeof imageFiles>,
  tmpdir: string, signal: AbortSignal): Promise<ExtractStats> {
  const pipe = new PassThrough({ highWaterMark: 1 << 20 })
  let first: unknown
  const fail = (err: unknown): never => {
    first ??= err
    pipe.destroy(err instanceof Error ? err : new Error(String(err)))
    throw err
  }
  const sink = new TarSink(pipe)
  const producing = flattenLayers({ layers, extraFiles, sink, tmpdir, signal }).then(async () => { await sink.end() }).catch(fail)
  const consuming = extractTar(pipe, rootfs).catch(fail)
  const [p, c] = await Promise.allSettled([producing, consuming])
  if (first !== undefined) throw first
  if (p.status === 'rejected') throw p.reason
  if (c.status === 'rejected') throw c.reason
  return c.value
}

