// The OCI distribution client (spec §3.4, §3.5): resolves a reference to the per-platform manifest,
// fetches the verified config, and streams blobs to disk verifying size and digest while they arrive.
import { createHash } from 'node:crypto'
import { createWriteStream, unlinkSync } from 'node:fs'
import { pipeline } from 'node:stream/promises'
import { Transform } from 'node:stream'
import { EnrootError } from '../util/errors.js'
import { Authenticator } from './auth.js'
import { CredentialStore } from './credentials.js'
import { HttpClient, header, httpSettings, networkError, readBody, statusError, type HttpResponse, type RequestOptions } from './http.js'
import { listPlatforms, parseArch, selectManifest } from './platform.js'
import { canonicalUri } from './uri.js'
import type { Config } from '../config/load.js'
import type { Descriptor, ImageConfig, ImageRef, ResolvedImage } from './types.js'

export const MT = {
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json'
} as const

/** Sent on EVERY manifest request, HEAD included: without it distribution answers schema 1 or 404 (slurm-notes). */
export const MANIFEST_ACCEPT = [MT.ociIndex, MT.dockerList, MT.ociManifest, MT.dockerManifest].join(', ')

export const LAYER_TYPES = new Set([
  'application/vnd.docker.image.rootfs.diff.tar.gzip',
  'application/vnd.oci.image.layer.v1.tar',
  'application/vnd.oci.image.layer.v1.tar+gzip',
  'application/vnd.oci.image.layer.v1.tar+zstd'
])

const MAX_MANIFEST = 4 << 20
const MAX_CONFIG = 64 << 20
const DIGEST = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/

interface Manifest {
  schemaVersion?: number
  mediaType?: string
  manifests?: Descriptor[]
  config?: Descriptor
  layers?: Descriptor[]
}

/** A digest checked before it reaches a URL or a file name (the cache names files after it). */
function checkDescriptor (d: unknown, what: string, url: string): Descriptor {
  const x = d as Descriptor
  if (typeof x !== 'object' || x === null || typeof x.digest !== 'string' || !DIGEST.test(x.digest) ||
      typeof x.size !== 'number' || !Number.isSafeInteger(x.size) || x.size < 0) {
    throw new EnrootError('IMAGE', `Could not parse digest information from ${url} (${what})`)
  }
  return x
}

const sha = (alg: string, data: Buffer): string => `${alg}:${createHash(alg).update(data).digest('hex')}`
const algOf = (digest: string): string => digest.slice(0, digest.indexOf(':'))

export class RegistryClient {
  readonly ref: ImageRef
  readonly http: HttpClient
  readonly auth: Authenticator
  private readonly base: string

  constructor (ref: ImageRef, http: HttpClient, creds: CredentialStore) {
    this.ref = ref
    this.http = http
    this.auth = new Authenticator(http, creds, ref)
    this.base = `${http.scheme}://${ref.registry}/v2/${ref.repository}`
  }

  static fromConfig (ref: ImageRef, cfg: Config): RegistryClient {
    return new RegistryClient(ref, new HttpClient(httpSettings(cfg)), new CredentialStore(cfg.get('ENROOT_CONFIG_PATH') ?? '', cfg.env))
  }

  async close (): Promise<void> { await this.http.close() }

  /** A request with the current Authorization; a 401 is answered once with fresh credentials. */
  private async send (url: string, opts: RequestOptions = {}): Promise<HttpResponse> {
    const withAuth = (a: string | undefined): RequestOptions => ({ ...opts, headers: { ...opts.headers, ...(a === undefined ? {} : { Authorization: a }) } })
    const sent = this.auth.authorization()
    let res = await this.http.request(url, withAuth(sent))
    if (res.status !== 401) return res
    await res.body.dump().catch(() => {})
    const fresh = await this.auth.answer(res, sent)
    res = await this.http.request(url, withAuth(fresh))
    if (res.status === 401) { await res.body.dump().catch(() => {}); throw this.auth.rejected(res) }
    return res
  }

  /** Throws enroot's one-line error for a failed response, with a hint for the common 404s. */
  private async ensureOk (res: HttpResponse, what: 'manifest' | 'blob'): Promise<void> {
    if (res.status < 400) return
    await res.body.dump().catch(() => {})
    let hint: string | undefined
    if (res.status === 404) {
      hint = what === 'manifest'
        ? `No image ${canonicalUri(this.ref)}: check the repository name and the tag or digest.`
        : 'The registry lost a blob the manifest references; push the image again.'
    }
    throw statusError(res.url, res.status, hint)
  }

  private async getManifest (reference: string): Promise<{ body: Buffer, json: Manifest, mediaType: string, url: string }> {
    const url = `${this.base}/manifests/${reference}`
    const res = await this.send(url, { headers: { Accept: MANIFEST_ACCEPT } })
    await this.ensureOk(res, 'manifest')
    const body = await readBody(res, MAX_MANIFEST, this.http.settings)
    if (reference.includes(':') && sha(algOf(reference), body) !== reference) {
      throw new EnrootError('DIGEST', `Checksum mismatch: ${reference}`, { hint: `The manifest served by ${url} does not match its digest.` })
    }
    let json: Manifest
    try { json = JSON.parse(body.toString('utf8')) as Manifest } catch { throw new EnrootError('IMAGE', `Could not parse manifest from ${url}`) }
    const ctype = (header(res, 'content-type') ?? '').split(';')[0]?.trim() ?? ''
    const mediaType = json.mediaType ?? ctype
    if (json.schemaVersion === 1 || mediaType.startsWith('application/vnd.docker.distribution.manifest.v1')) {
      throw new EnrootError('UNSUPPORTED', `Image ${canonicalUri(this.ref)} uses the Docker schema 1 manifest format, which is not supported`, {
        hint: 'Push it again with a current Docker, or convert it: skopeo copy --format v2s2 docker://IMAGE docker://IMAGE'
      })
    }
    return { body, json, mediaType, url }
  }

  private isIndex (m: { json: Manifest, mediaType: string }): boolean {
    return m.mediaType === MT.ociIndex || m.mediaType === MT.dockerList || (m.mediaType === '' && Array.isArray(m.json.manifests))
  }

  /** From an index, the descriptor for `arch`; clear error when the index lacks it. */
  private pick (index: Manifest, arch: string, url: string): Descriptor {
    const want = parseArch(arch)
    const entries = (index.manifests ?? []).map((d, i) => checkDescriptor(d, `manifests[${i}]`, url))
    const d = selectManifest(entries, want)
    if (d === undefined) {
      const wanted = `linux/${want.architecture}${want.variant === undefined ? '' : `/${want.variant}`}`
      throw new EnrootError('IMAGE', `Image ${canonicalUri(this.ref)} has no manifest for ${wanted} (available: ${listPlatforms(entries) || 'none'})`, {
        hint: 'Choose another architecture with --arch.'
      })
    }
    return d
  }

  /** The per-platform image: manifest digest, config and layers (bottom-most first). */
  async resolve (arch: string): Promise<ResolvedImage> {
    parseArch(arch)
    let m = await this.getManifest(this.ref.reference)
    let digest = sha('sha256', m.body)
    if (this.isIndex(m)) {
      const d = this.pick(m.json, arch, m.url)
      m = await this.getManifest(d.digest)
      digest = d.digest
      if (this.isIndex(m)) throw new EnrootError('IMAGE', `Nested image index at ${m.url} is not supported`)
    } else if (this.ref.digest !== undefined) {
      digest = this.ref.digest
    }
    if (m.mediaType !== MT.dockerManifest && m.mediaType !== MT.ociManifest) {
      throw new EnrootError('UNSUPPORTED', `Unsupported manifest media type ${m.mediaType || '<none>'} from ${m.url}`)
    }
    const config = checkDescriptor(m.json.config, 'config', m.url)
    const rawLayers = m.json.layers
    if (!Array.isArray(rawLayers) || rawLayers.length === 0) throw new EnrootError('IMAGE', `Could not parse digest information from ${m.url} (no layers)`)
    const layers = rawLayers.map((l, i) => this.checkLayer(checkDescriptor(l, `layers[${i}]`, m.url)))
    return { ref: this.ref, manifestDigest: digest, manifestMediaType: m.mediaType, config, layers }
  }

  private checkLayer (d: Descriptor): Descriptor {
    if (LAYER_TYPES.has(d.mediaType)) return d
    if (/foreign|nondistributable/.test(d.mediaType) || (d.urls?.length ?? 0) > 0) {
      throw new EnrootError('UNSUPPORTED', `Image ${canonicalUri(this.ref)} has a non-distributable (foreign) layer ${d.digest}${d.urls === undefined ? '' : ` hosted at ${d.urls.join(', ')}`}`, {
        hint: 'enroot does not download foreign layers (typically Windows base layers); use a Linux image.'
      })
    }
    throw new EnrootError('UNSUPPORTED', `Unsupported layer media type ${d.mediaType} (${d.digest})`)
  }

  /** `enroot digest` (spec §2.3): HEAD of the per-architecture manifest, its Docker-Content-Digest. */
  async headDigest (arch: string): Promise<string> {
    parseArch(arch)
    let url = `${this.base}/manifests/${this.ref.reference}`
    let res = await this.send(url, { method: 'HEAD', headers: { Accept: MANIFEST_ACCEPT } })
    await this.ensureOk(res, 'manifest')
    const ctype = (header(res, 'content-type') ?? '').split(';')[0]?.trim() ?? ''
    if (ctype === MT.ociIndex || ctype === MT.dockerList) {
      const index = await this.getManifest(this.ref.reference)
      url = `${this.base}/manifests/${this.pick(index.json, arch, index.url).digest}`
      res = await this.send(url, { method: 'HEAD', headers: { Accept: MANIFEST_ACCEPT } })
      await this.ensureOk(res, 'manifest')
    }
    const digest = header(res, 'docker-content-digest')
    if (digest === undefined || !DIGEST.test(digest)) throw new EnrootError('REGISTRY', `Could not retrieve digest from ${url}`)
    return digest
  }

  /** The image configuration, verified against its descriptor. */
  async fetchConfig (resolved: ResolvedImage): Promise<ImageConfig> {
    const d = resolved.config
    if (d.size > MAX_CONFIG) throw new EnrootError('IMAGE', `Image configuration ${d.digest} is too large (${d.size} bytes)`)
    const url = `${this.base}/blobs/${d.digest}`
    const body = await this.http.retrying(url, async () => {
      const res = await this.send(url)
      await this.ensureOk(res, 'blob')
      return await readBody(res, d.size, this.http.settings)
    })
    if (body.length !== d.size || sha(algOf(d.digest), body) !== d.digest) throw new EnrootError('DIGEST', `Checksum mismatch: ${d.digest}`)
    try { return JSON.parse(body.toString('utf8')) as ImageConfig } catch { throw new EnrootError('IMAGE', `Could not parse image configuration ${d.digest}`) }
  }

  /**
   * Streams a blob to `destPath`, hashing and counting as it arrives (`onBytes(n)` per chunk, `onBytes(-n)`
   * when an attempt fails); more bytes than the descriptor says stop the transfer at once. Any failure removes the file. Network failures retry the whole blob
   * (ENROOT_TRANSFER_RETRIES); a checksum mismatch does not (the registry would serve the same bytes).
   */
  async downloadBlob (desc: Descriptor, destPath: string, onBytes?: (n: number) => void): Promise<void> {
    checkDescriptor(desc, 'blob', this.base)
    const url = `${this.base}/blobs/${desc.digest}`
    await this.http.retrying(url, async () => {
      let n = 0
      try {
        const res = await this.send(url)
        await this.ensureOk(res, 'blob')
        const hash = createHash(algOf(desc.digest))
        const verify = new Transform({
          transform (chunk: Buffer, _enc, cb) {
            n += chunk.length
            if (n > desc.size) { cb(new EnrootError('DIGEST', `Checksum mismatch: ${desc.digest}`, { hint: `${url} sent more than the ${desc.size} bytes the manifest lists.` })); return }
            hash.update(chunk)
            onBytes?.(chunk.length)
            cb(null, chunk)
          }
        })
        try {
          await pipeline(res.body, verify, createWriteStream(destPath, { mode: 0o640 }))
        } catch (err) { throw networkError(url, err, this.http.settings) }
        if (n !== desc.size) throw new EnrootError('NETWORK', `Transfer from ${url} was interrupted (${n} of ${desc.size} bytes)`, { hint: 'Retry, or set ENROOT_TRANSFER_RETRIES to retry automatically.' })
        if (`${algOf(desc.digest)}:${hash.digest('hex')}` !== desc.digest) throw new EnrootError('DIGEST', `Checksum mismatch: ${desc.digest}`)
      } catch (err) {
        // the partial blob, a plain file: unlinkSync, as rmSync loads Node's recursive remover even for one file
        try { unlinkSync(destPath) } catch (e) { if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e }
        // take back the progress of a failed attempt, so a retry does not count bytes twice
        if (n > 0) onBytes?.(-n)
        throw err
      }
    })
  }
}
