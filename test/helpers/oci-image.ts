// Reproducible test images: OCI image layouts written byte for byte, pushed with skopeo.
//
// API:
//   tarDirectory(dir)                       -> Buffer: GNU tar, sorted, mtime 0, owner 0:0 (reproducible)
//   busyboxRootfs(dir)                      -> fills dir with /bin/busybox + applet links, /etc/passwd, /etc/group, /tmp
//   busyboxImage(over?)                     -> ImageInput: one busybox layer, Env PATH=…, Cmd ["sh"] (tar cached)
//   writeOciLayout(dir, tag, image | images[], { attestation? })
//        -> Layout { dir, tag, top: {digest, mediaType, size}, manifests: BuiltManifest[] (one per image) }
//        one image: index.json points at its manifest; several: at an OCI index with one entry per
//        architecture (plus a BuildKit-style attestation entry, platform unknown/unknown, when asked)
//   await pushLayout(layout, registry, 'name:tag', { format: 'v2s2' | 'oci', all })
//        -> skopeo copy --dest-tls-verify=false [--dest-creds u:p] [--format v2s2] [--all] oci:DIR:TAG docker://HOST/NAME:TAG
//   skopeoInspect(registry, 'name:tag', raw?) -> skopeo inspect output (JSON text)
//   sha256(buf)                             -> 'sha256:<hex>'
// Layers compress as gzip (zlib, fixed header), zstd (`zstd` CLI, -19 off: level 3) or none.
// Docker schema 2 (v2s2) cannot carry zstd layers: push those as OCI.
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { copyFileSync, chmodSync, mkdirSync, readdirSync, symlinkSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { gzipSync } from 'node:zlib'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'

export type Compression = 'gzip' | 'zstd' | 'none'
export interface LayerInput { tar: Buffer, compression?: Compression }
export interface ImageInput {
  layers: LayerInput[]
  /** the image config's `config` part: Env, Cmd, Entrypoint, WorkingDir, Volumes, Labels */
  config?: Record<string, unknown>
  architecture?: string
  variant?: string
  os?: string
}
export interface Blob { mediaType: string, digest: string, size: number }
export interface BuiltManifest extends Blob { config: Blob, layers: Blob[], platform: { os: string, architecture: string, variant?: string } }
export interface Layout { dir: string, tag: string, top: Blob, manifests: BuiltManifest[] }

export const MEDIA = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  tar: 'application/vnd.oci.image.layer.v1.tar',
  gzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  zstd: 'application/vnd.oci.image.layer.v1.tar+zstd'
} as const

export const sha256 = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`

export function tarDirectory (dir: string): Buffer {
  const names = readdirSync(dir).sort()
  return execFileSync('tar', ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '--format=gnu',
    // an empty directory makes an empty (1 KiB of zeros) archive; tar wants -T /dev/null for that
    '-C', dir, '-cf', '-', ...(names.length === 0 ? ['-T', '/dev/null'] : names)], { maxBuffer: 256 << 20 })
}

const APPLETS = ['sh', 'echo', 'cat', 'ls', 'true', 'false', 'id', 'hostname', 'env', 'pwd', 'sleep', 'mkdir', 'rm', 'touch', 'test', 'stat', 'printf', 'grep', 'head', 'wc', 'readlink', 'uname', 'mount', 'df']

export function busyboxRootfs (dir: string): void {
  for (const d of ['bin', 'etc', 'tmp', 'root']) mkdirSync(join(dir, d), { recursive: true })
  copyFileSync('/bin/busybox', join(dir, 'bin', 'busybox'))
  chmodSync(join(dir, 'bin', 'busybox'), 0o755)
  for (const a of APPLETS) symlinkSync('busybox', join(dir, 'bin', a))
  writeFileSync(join(dir, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n')
  writeFileSync(join(dir, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n')
  for (const f of ['passwd', 'group']) chmodSync(join(dir, 'etc', f), 0o644)
  for (const d of ['bin', 'etc']) chmodSync(join(dir, d), 0o755)
  chmodSync(join(dir, 'root'), 0o700)
  chmodSync(join(dir, 'tmp'), 0o1777)
}

let busyboxTar: Buffer | undefined
export const BUSYBOX_ENV = ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']

export function busyboxImage (over: Partial<ImageInput> = {}): ImageInput {
  if (busyboxTar === undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'enroot-busybox-'))
    try { busyboxRootfs(dir); busyboxTar = tarDirectory(dir) } finally { rmSync(dir, { recursive: true, force: true }) }
  }
  return { layers: [{ tar: busyboxTar, compression: 'gzip' }], config: { Env: BUSYBOX_ENV, Cmd: ['sh'] }, ...over }
}

function compress (l: LayerInput): { data: Buffer, mediaType: string } {
  switch (l.compression ?? 'gzip') {
    case 'gzip': return { data: gzipSync(l.tar, { level: 6 }), mediaType: MEDIA.gzip }
    case 'zstd': return { data: execFileSync('zstd', ['-q', '-3', '-c'], { input: l.tar, maxBuffer: 256 << 20 }), mediaType: MEDIA.zstd }
    case 'none': return { data: l.tar, mediaType: MEDIA.tar }
  }
}

function putBlob (dir: string, data: Buffer | string, mediaType: string): Blob {
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data)
  const digest = sha256(buf)
  writeFileSync(join(dir, 'blobs', 'sha256', digest.slice(7)), buf)
  return { mediaType, digest, size: buf.length }
}

function buildManifest (dir: string, img: ImageInput): BuiltManifest {
  const layers = img.layers.map(l => { const c = compress(l); return putBlob(dir, c.data, c.mediaType) })
  const platform = { os: img.os ?? 'linux', architecture: img.architecture ?? 'amd64', ...(img.variant === undefined ? {} : { variant: img.variant }) }
  const config = putBlob(dir, JSON.stringify({
    ...platform,
    config: img.config ?? {},
    rootfs: { type: 'layers', diff_ids: img.layers.map(l => sha256(l.tar)) }
  }), MEDIA.config)
  const m = putBlob(dir, JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.manifest, config, layers }), MEDIA.manifest)
  return { ...m, config, layers, platform }
}

/** A BuildKit-style attestation manifest that refers to `subject` (in-toto layer, platform unknown/unknown). */
function attestationEntry (dir: string, subject: Blob): Record<string, unknown> {
  const layer = putBlob(dir, JSON.stringify({ _type: 'https://in-toto.io/Statement/v0.1', subject: [] }), 'application/vnd.in-toto+json')
  const config = putBlob(dir, JSON.stringify({ architecture: 'unknown', os: 'unknown', config: {}, rootfs: { type: 'layers', diff_ids: [sha256(JSON.stringify({}))] } }), MEDIA.config)
  const m = putBlob(dir, JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.manifest, config, layers: [layer] }), MEDIA.manifest)
  return {
    ...m,
    platform: { architecture: 'unknown', os: 'unknown' },
    annotations: { 'vnd.docker.reference.digest': subject.digest, 'vnd.docker.reference.type': 'attestation-manifest' }
  }
}

export function writeOciLayout (dir: string, tag: string, images: ImageInput | ImageInput[], opts: { attestation?: boolean } = {}): Layout {
  mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true })
  writeFileSync(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}')
  const list = Array.isArray(images) ? images : [images]
  const manifests = list.map(img => buildManifest(dir, img))
  let top: Blob
  if (!Array.isArray(images)) {
    top = manifests[0] as Blob
  } else {
    // attestation first: a client that takes the first entry, or ignores annotations, picks it wrongly
    const entries: unknown[] = opts.attestation === true ? [attestationEntry(dir, manifests[0] as Blob)] : []
    for (const m of manifests) entries.push({ mediaType: m.mediaType, digest: m.digest, size: m.size, platform: m.platform })
    top = putBlob(dir, JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.index, manifests: entries }), MEDIA.index)
  }
  writeFileSync(join(dir, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    manifests: [{ mediaType: top.mediaType, digest: top.digest, size: top.size, annotations: { 'org.opencontainers.image.ref.name': tag } }]
  }))
  return { dir, tag, top, manifests }
}

const run = promisify(execFile)

export interface PushTarget { host: string, pushCreds?: string }

export async function pushLayout (layout: Layout, reg: PushTarget, nameTag: string, opts: { format?: 'v2s2' | 'oci', all?: boolean } = {}): Promise<void> {
  const args = ['copy', '--quiet', '--dest-tls-verify=false']
  if (reg.pushCreds !== undefined) args.push('--dest-creds', reg.pushCreds)
  if (opts.format === 'v2s2') args.push('--format', 'v2s2')
  if (opts.all === true) args.push('--all')
  // keep manifests byte for byte as written (skopeo would gzip uncompressed layers); v2s2 must convert
  if (opts.format !== 'v2s2') args.push('--preserve-digests')
  // skopeo wants a writable policy; the default one accepts anything
  args.push(`oci:${layout.dir}:${layout.tag}`, `docker://${reg.host}/${nameTag}`)
  await run('skopeo', ['--insecure-policy', ...args], { maxBuffer: 16 << 20 })
}

export async function skopeoInspect (reg: PushTarget, nameTag: string, raw = false): Promise<string> {
  const args = ['inspect', '--tls-verify=false']
  if (reg.pushCreds !== undefined) args.push('--creds', reg.pushCreds)
  if (raw) args.push('--raw')
  args.push(`docker://${reg.host}/${nameTag}`)
  return (await run('skopeo', args, { maxBuffer: 16 << 20 })).stdout
}
