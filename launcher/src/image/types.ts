// Shared data shapes of the import path. The registry client (registry.ts), the flattener
// (flatten.ts / squash.ts), the cache (../cache/) and `enroot import` all speak these.

/** A parsed docker:// reference (spec §3.1), canonicalised (Docker Hub → registry-1.docker.io, library/). */
export interface ImageRef {
  /** host[:port], e.g. registry-1.docker.io, nvcr.io, 127.0.0.1:5000 */
  registry: string
  /** e.g. library/alpine, nvidia/cuda */
  repository: string
  /** defaults to latest */
  tag: string
  /** sha256:…, when the URI pins one (then it is the reference used) */
  digest?: string
  /** USER@ from the URI, or inferred from .credentials */
  user?: string
  /** what goes into /v2/<repository>/manifests/<reference>: the digest if given, else the tag */
  reference: string
}

export interface Platform { os: string, architecture: string, variant?: string }

export interface Descriptor {
  mediaType: string
  digest: string
  size: number
  platform?: Platform
  annotations?: Record<string, string>
  urls?: string[]
}

/** The per-platform image a registry resolved to. */
export interface ResolvedImage {
  ref: ImageRef
  /** digest of the per-platform manifest (what `enroot digest` prints) */
  manifestDigest: string
  manifestMediaType: string
  config: Descriptor
  /** bottom-most layer first (manifest order) */
  layers: Descriptor[]
}

/** The parts of the OCI/Docker image configuration that enroot uses (spec §4). */
export interface ImageConfig {
  architecture?: string
  os?: string
  variant?: string
  config?: {
    Env?: string[] | null
    Entrypoint?: string[] | null
    Cmd?: string[] | null
    WorkingDir?: string
    Volumes?: Record<string, unknown> | null
    Labels?: Record<string, string> | null
  }
}

/** A layer blob on local disk, verified against its digest. */
export interface LayerFile {
  path: string
  mediaType: string
  digest: string
}

/** A file that the import adds on top of the image (the "config layer" of spec §3.6). */
export interface ExtraFile {
  /** absolute path inside the image, e.g. /etc/rc */
  path: string
  content: string
  mode: number
  /**
   * 'file' (the default) shadows any image entry at the same path. 'directory' (e.g. WorkingDir) is
   * created only where the image has nothing at that path, so the image's own mode and mtime win.
   */
  kind?: 'file' | 'directory'
}

export type ImportPhase = 'resolve' | 'download' | 'convert' | 'publish'

/** Progress events (typed union): the import command draws them on a TTY, ignores them otherwise. */
export type ProgressEvent =
  | { kind: 'phase', phase: ImportPhase }
  | { kind: 'layer-start', digest: string, size: number }
  | { kind: 'layer-bytes', digest: string, bytes: number }
  | { kind: 'layer-done', digest: string, cached: boolean }
  | { kind: 'convert-bytes', bytes: number, total: number }
