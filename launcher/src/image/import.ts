// `enroot import docker://…` end to end (spec §2.4, §3; doc/cache.md):
//   URI → manifest (registry) → config blob (cache) → image key → converted image (cache) → the user's file.
// Layers are downloaded only inside the image build, so when the image is cached (or being built by
// another importer we wait for) no layer is touched. Every blob and image goes through the cache's
// single-flight, so many importers of one image, on one node or many, download and convert it once.
import { promises as fsp, rmSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import type { Config } from '../config/load.js'
import { EnrootError, fileExists, invalidArgument, noSuchFile } from '../util/errors.js'
import { log } from '../util/log.js'
import { openCache, type CacheStore } from '../cache/store.js'
import { imageKey, imageKeyMaterial } from '../cache/layout.js'
import { describeOwner, newNonce } from '../cache/lock.js'
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
}

export interface ImportResult { output: string, cachedImage: boolean, method: 'link' | 'copy' }

/** Schemes other than docker:// are refused before any work (dockerd:// and podman:// come later). */
export function checkScheme (uri: string): void {
  if (uri.startsWith('docker://')) return
  if (uri.startsWith('dockerd://') || uri.startsWith('podman://')) {
    throw new EnrootError('UNSUPPORTED', `Not supported yet: ${uri}`, { hint: 'Only docker:// imports from a registry are implemented so far; push the image to a registry, or import from one.' })
  }
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
  const ref = parseImageUri(req.uri, { credentialsText: readCredentialsText(cfg.get('ENROOT_CONFIG_PATH') ?? '') })
  const arch = req.arch ?? hostArch()
  const platform = parseArch(arch)
  const output = await outputPath(req, defaultImportName(ref))
  const progress = req.onProgress ?? (() => {})

  // Private scratch on ENROOT_TEMP_PATH (node-local): the flattener's spool, and entries we produce when
  // the cache is read-only to us. Created on first use, always removed.
  const scratch = join(cfg.get('ENROOT_TEMP_PATH') ?? '/tmp', `enroot.${newNonce()}`)
  const store = await openCache({
    root: cfg.get('ENROOT_CACHE_PATH') ?? '',
    lockTimeoutS: cfg.int('ENROOT_LOCK_TIMEOUT'),
    lockStaleS: cfg.int('ENROOT_LOCK_STALE'),
    scratch,
    onWait: (what, owner) => { log.info(`Waiting for ${describeOwner(owner)}, which is producing ${what}`) }
  })
  const forgetScratch = onInterrupt(() => { rmSync(scratch, { recursive: true, force: true }) })
  const client = RegistryClient.fromConfig(ref, cfg)
  try {
    progress({ kind: 'phase', phase: 'resolve' })
    log.info(`Fetching image manifest for ${formatPlatform({ os: 'linux', ...platform })}`)
    const resolved = await client.resolve(arch)
    const config = await fetchConfig(store, client, resolved)
    if (config.architecture !== undefined && config.architecture !== platform.architecture) {
      log.warn(`Image architecture doesn't match the requested one: ${config.architecture} != ${platform.architecture}`)
    }
    const extraFiles = imageFiles(config, canonicalUri(ref))
    const squashOptions = cfg.get('ENROOT_SQUASH_OPTIONS') ?? ''
    const epoch = cfg.get('SOURCE_DATE_EPOCH')
    const keyInput = { manifestDigest: resolved.manifestDigest, arch: formatPlatform({ os: 'linux', ...platform }), squashOptions, converter: CONVERTER, extraFiles, ...(epoch !== undefined && epoch !== '' ? { sourceDateEpoch: epoch } : {}) }
    const key = imageKey(keyInput)

    const image = await store.ensureImage(key, async (tmp) => {
      const layers = await fetchLayers(cfg, store, client, resolved, progress)
      progress({ kind: 'phase', phase: 'convert' })
      log.info('Creating squashfs filesystem...')
      await fsp.mkdir(scratch, { recursive: true, mode: 0o700 })
      // Loaded only when converting: a warm import must not pay for the flattener.
      const { buildSquashfs } = await import('./squash.js')
      await buildSquashfs({
        layers, extraFiles, output: tmp, squashOptions, tmpdir: scratch,
        processors: cfg.int('ENROOT_MAX_PROCESSORS'),
        ...(keyInput.sourceDateEpoch !== undefined ? { sourceDateEpoch: Number(keyInput.sourceDateEpoch) } : {}),
        onProgress: progress
      })
    }, imageKeyMaterial(keyInput))
    if (!image.built) log.info('Found the converted image in the cache')

    progress({ kind: 'phase', phase: 'publish' })
    const method = await publishOutput(image.path, output, store.mayLinkOutput(image.path))
    return { output, cachedImage: !image.built, method }
  } finally {
    await client.close().catch(() => {})
    rmSync(scratch, { recursive: true, force: true })
    forgetScratch()
  }
}

/** The config blob through the cache (it is small, but keying the image needs it: /etc/rc, /etc/environment). */
async function fetchConfig (store: CacheStore, client: RegistryClient, resolved: ResolvedImage): Promise<ImageConfig> {
  const d = resolved.config
  const blob = await store.ensureBlob(d.digest, d.size, async (tmp) => { await client.downloadBlob(d, tmp) })
  try {
    return JSON.parse(await fsp.readFile(blob.path, 'utf8')) as ImageConfig
  } catch {
    throw new EnrootError('IMAGE', `Could not parse image configuration ${d.digest}`)
  }
}

/** Every layer through the cache, at most ENROOT_MAX_CONNECTIONS at a time (0: no limit). */
async function fetchLayers (cfg: Config, store: CacheStore, client: RegistryClient, resolved: ResolvedImage,
  progress: (e: ProgressEvent) => void): Promise<LayerFile[]> {
  progress({ kind: 'phase', phase: 'download' })
  const layers = resolved.layers
  const limit = cfg.int('ENROOT_MAX_CONNECTIONS') || layers.length
  const out: LayerFile[] = new Array(layers.length)
  let next = 0
  let fetched = 0
  const worker = async (): Promise<void> => {
    for (let i = next++; i < layers.length; i = next++) {
      const d = layers[i] as (typeof layers)[number]
      progress({ kind: 'layer-start', digest: d.digest, size: d.size })
      const r = await store.ensureBlob(d.digest, d.size, async (tmp) => {
        await client.downloadBlob(d, tmp, (n) => { progress({ kind: 'layer-bytes', digest: d.digest, bytes: n }) })
      })
      if (r.fetched) fetched++
      progress({ kind: 'layer-done', digest: d.digest, cached: !r.fetched })
      out[i] = { path: r.path, mediaType: d.mediaType, digest: d.digest }
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, layers.length) }, worker))
  log.info(fetched === 0 ? 'Found all layers in cache' : `Downloaded ${fetched} missing layer${fetched === 1 ? '' : 's'}`)
  return out
}
