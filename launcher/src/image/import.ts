// `enroot import docker://…` end to end (spec §2.4, §3; doc/cache.md):
//   URI → manifest (registry) → config blob (cache) → image key → converted image (cache) → the user's file.
// Layers are downloaded only inside the image build, so when the image is cached (or being built by
// another importer we wait for) no layer is touched. Every blob and image goes through the cache's
// single-flight, so many importers of one image, on one node or many, download and convert it once.
import { makeDirsAsync } from '../util/fs.js'
import { promises as fsp, rmSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import type { Config } from '../config/load.js'
import { EnrootError, fileExists, invalidArgument, noSuchFile } from '../util/errors.js'
import { log } from '../util/log.js'
import { openConfiguredCache, type CacheStore } from '../cache/store.js'
import { imageKey, imageKeyMaterial } from '../cache/layout.js'
import { onInterrupt } from '../cache/interrupt.js'
import { publishOutput } from '../cache/publish.js'
import { parseImageUri, defaultImportName, canonicalUri } from './uri.js'
import { readCredentialsText } from './credentials.js'
import { hostArch, parseArch, formatPlatform } from './platform.js'
import { RegistryClient } from './registry.js'
import { imageFiles } from './image-files.js'
import type { ImageConfig, LayerFile, ProgressEvent, ResolvedImage } from './types.js'

/**
 * Names the converter in the image key: bump it whenever flatten.ts, squash.ts or image-files.ts
 * change the bytes they produce, so that cached images made by the old code are not reused.
 */
export const CONVERTER = 'flatten+tar2sqfs/1'

export interface ImportRequest {
  uri: string
  /** --arch; the host's by default */
  arch?: string
  /** --output; `<image>+<tag>.sqsh` in `cwd` by default */
  output?: string
  cwd: string
  onProgress?: (e: ProgressEvent) => void
  /**
   * The Slurm launcher: when the image is an entry of the cache (not a private build in scratch), return
   * that entry's path as `output` instead of linking or copying it (method 'entry'; `output` stays unused).
   */
  reuseEntry?: boolean
}

export interface ImportResult {
  output: string
  cachedImage: boolean
  method: 'link' | 'copy' | 'entry'
  /**
   * The image's /etc/environment and /etc/fstab as the import wrote them into the squashfs (docker://
   * only; they are part of the cache key, so an entry always holds exactly these): a start of the entry
   * need not read them back out with unsquashfs.
   */
  files?: ImageFilesText
}

export interface ImageFilesText { environment: string, fstab: string }

/** Schemes other than docker://, dockerd:// and podman:// are refused before any work. */
export function checkScheme (uri: string): void {
  if (uri.startsWith('docker://')) return
  if (uri.startsWith('dockerd://') || uri.startsWith('podman://')) return
  throw invalidArgument(uri)
}

/** The output file: must not exist (import has no --force, as in enroot), its directory must. */
async function outputPath (req: ImportRequest, defaultName: string): Promise<string> {
  const out = resolve(req.cwd, req.output ?? defaultName)
  const parent = await fsp.realpath(dirname(out)).catch(() => { throw noSuchFile(dirname(out)) })
  const path = join(parent, out.slice(dirname(out).length + 1))
  if (await fsp.lstat(path).then(() => true, () => false)) throw fileExists(path)
  return path
}

export async function importImage (cfg: Config, req: ImportRequest): Promise<ImportResult> {
  checkScheme(req.uri)
  // The local Docker daemon or podman storage: a module of its own (image/daemon.ts), loaded only for them.
  if (!req.uri.startsWith('docker://')) return await (await import('./daemon.js')).importFromDaemon(cfg, req)
  const ref = parseImageUri(req.uri, { credentialsText: readCredentialsText(cfg.get('ENROOT_CONFIG_PATH') ?? '') })
  const arch = req.arch ?? hostArch()
  const platform = parseArch(arch)
  const output = await outputPath(req, defaultImportName(ref))
  const progress = req.onProgress ?? (() => {})

  // Private scratch on ENROOT_TEMP_PATH (node-local): the flattener's spool, and entries we produce when
  // the cache is read-only to us. Created on first use, always removed.
  const { store, scratch } = await openConfiguredCache(cfg)
  const forgetScratch = onInterrupt(() => { rmSync(scratch, { recursive: true, force: true }) })
  const client = RegistryClient.fromConfig(ref, cfg)
  try {
    const { resolved, config } = await resolveImage(store, client, arch, progress)
    const extraFiles = imageFiles(config, canonicalUri(ref))
    const squashOptions = cfg.get('ENROOT_SQUASH_OPTIONS') ?? ''
    const epoch = cfg.get('SOURCE_DATE_EPOCH')
    const keyInput = { manifestDigest: resolved.manifestDigest, arch: formatPlatform({ os: 'linux', ...platform }), squashOptions, converter: CONVERTER, extraFiles, ...(epoch !== undefined && epoch !== '' ? { sourceDateEpoch: epoch } : {}) }
    const key = imageKey(keyInput)

    const image = await store.ensureImage(key, async (tmp) => {
      await makeDirsAsync(scratch, 0o700)
      // Loaded only when converting: a warm import must not pay for the flattener.
      const { buildSquashfs } = await import('./squash.js')
      // The conversion starts as soon as the top-most layer is in the cache (it reads top-most first)
      // instead of after the last download: downloading and converting overlap.
      const layers = startLayerDownloads(cfg, store, client, resolved, progress)
      try {
        progress({ kind: 'phase', phase: 'convert' })
        log.info('Creating squashfs filesystem...')
        await buildSquashfs({
          layers: layers.files, extraFiles, output: tmp, squashOptions, tmpdir: scratch,
          processors: cfg.int('ENROOT_MAX_PROCESSORS'),
          totalBytes: resolved.layers.reduce((n, l) => n + l.size, 0),
          ...(keyInput.sourceDateEpoch !== undefined ? { sourceDateEpoch: Number(keyInput.sourceDateEpoch) } : {}),
          onProgress: progress
        })
      } finally {
        // Never leave a download running behind a released image lock (or a closed client): a failed
        // conversion waits for them; they finish into the cache, ready for the next try.
        await layers.settled
      }
    }, imageKeyMaterial(keyInput))
    if (!image.built) log.info('Found the converted image in the cache')

    const text = (path: string): string => extraFiles.find(f => f.path === path)?.content ?? ''
    const files = { environment: text('/etc/environment'), fstab: text('/etc/fstab') }
    if (req.reuseEntry === true && !image.path.startsWith(`${scratch}/`)) return { output: image.path, cachedImage: !image.built, method: 'entry', files }
    progress({ kind: 'phase', phase: 'publish' })
    const method = await publishOutput(image.path, output, store.mayLinkOutput(image.path))
    return { output, cachedImage: !image.built, method, files }
  } finally {
    await client.close().catch(() => {})
    rmSync(scratch, { recursive: true, force: true })
    forgetScratch()
  }
}

/**
 * The per-platform manifest and the image configuration (shared by import and load). The config blob goes
 * through the cache: it is small, but keying the image needs it (/etc/rc, /etc/environment).
 */
export async function resolveImage (store: CacheStore, client: RegistryClient, arch: string,
  progress: (e: ProgressEvent) => void): Promise<{ resolved: ResolvedImage, config: ImageConfig }> {
  const platform = parseArch(arch)
  progress({ kind: 'phase', phase: 'resolve' })
  log.info(`Fetching image manifest for ${formatPlatform({ os: 'linux', ...platform })}`)
  const resolved = await client.resolve(arch)
  const config = await fetchConfig(store, client, resolved)
  if (config.architecture !== undefined && config.architecture !== platform.architecture) {
    log.warn(`Image architecture doesn't match the requested one: ${config.architecture} != ${platform.architecture}`)
  }
  return { resolved, config }
}

async function fetchConfig (store: CacheStore, client: RegistryClient, resolved: ResolvedImage): Promise<ImageConfig> {
  const d = resolved.config
  const blob = await store.ensureBlob(d.digest, d.size, async (tmp) => { await client.downloadBlob(d, tmp) })
  try {
    return JSON.parse(await fsp.readFile(blob.path, 'utf8')) as ImageConfig
  } catch {
    throw new EnrootError('IMAGE', `Could not parse image configuration ${d.digest}`)
  }
}

export interface LayerDownloads {
  /** one per layer, bottom-most first; each resolves when that blob is verified and in the cache */
  files: Array<Promise<LayerFile>>
  /** all of them done, failed or not */
  settled: Promise<void>
}

/**
 * Every layer through the cache, at most ENROOT_MAX_CONNECTIONS at a time (0: no limit), top-most
 * first: the flattener reads the top-most layer first, so it can start while lower layers download.
 */
export function startLayerDownloads (cfg: Config, store: CacheStore, client: RegistryClient, resolved: ResolvedImage,
  progress: (e: ProgressEvent) => void): LayerDownloads {
  progress({ kind: 'phase', phase: 'download' })
  const layers = resolved.layers
  const limit = cfg.int('ENROOT_MAX_CONNECTIONS') || layers.length
  const waiting = layers.map(() => deferred<LayerFile>())
  let next = layers.length - 1
  let fetched = 0
  let failed = false
  const worker = async (): Promise<void> => {
    for (let i = next--; i >= 0; i = next--) {
      const d = layers[i] as (typeof layers)[number]
      const done = waiting[i] as Deferred<LayerFile>
      try {
        progress({ kind: 'layer-start', digest: d.digest, size: d.size })
        const r = await store.ensureBlob(d.digest, d.size, async (tmp) => {
          await client.downloadBlob(d, tmp, (n) => { progress({ kind: 'layer-bytes', digest: d.digest, bytes: n }) })
        })
        if (r.fetched) fetched++
        progress({ kind: 'layer-done', digest: d.digest, cached: !r.fetched })
        done.resolve({ path: r.path, mediaType: d.mediaType, digest: d.digest })
      } catch (err) {
        failed = true
        done.reject(err)
      }
    }
  }
  const files = waiting.map(w => w.promise)
  // Handled here so that a failure the converter never awaits (it failed first) is not an unhandled
  // rejection; the converter still sees each rejection when it awaits that layer.
  for (const f of files) f.catch(() => {})
  const settled = Promise.all(Array.from({ length: Math.min(limit, layers.length) }, worker)).then(() => {
    if (!failed) log.info(fetched === 0 ? 'Found all layers in cache' : `Downloaded ${fetched} missing layer${fetched === 1 ? '' : 's'}`)
  })
  return { files, settled }
}

interface Deferred<T> { promise: Promise<T>, resolve: (v: T) => void, reject: (e: unknown) => void }

/** Promise.withResolvers, which Node 20 lacks. */
function deferred<T> (): Deferred<T> {
  let resolve!: (v: T) => void
  let reject!: (e: unknown) => void
  const promise = new Promise<T>((res, rej) => { resolve = res; reject = rej })
  return { promise, resolve, reject }
}
