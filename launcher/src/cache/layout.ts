// Where things live in the cache (doc/cache.md). Pure path arithmetic: no I/O here, so that every
// other module (and a test) agrees on names without touching the disk.
//
//   $ENROOT_CACHE_PATH/blobs/sha256/<hex>     registry blobs, byte for byte as sent (re-verifiable)
//   $ENROOT_CACHE_PATH/images/<key>.sqsh      converted images; <key> = imageKey(...)
//   $ENROOT_CACHE_PATH/images/<key>.json      what the key was made of, and the image's size and sha256
//   $ENROOT_CACHE_PATH/tmp/                   partial files; same filesystem as the entries, so publish is atomic
//   $ENROOT_CACHE_PATH/locks/                 one lock file per entry being produced (lock.ts)
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { EnrootError } from '../util/errors.js'

/** Bump when the meaning of a key or the layout changes: old entries are then simply never looked up. */
export const LAYOUT_VERSION = 1

export interface CacheLayout {
  root: string
  blobs: string
  images: string
  tmp: string
  locks: string
}

export function cacheLayout (root: string): CacheLayout {
  return {
    root,
    blobs: join(root, 'blobs', 'sha256'),
    images: join(root, 'images'),
    tmp: join(root, 'tmp'),
    locks: join(root, 'locks')
  }
}

/** "sha256:<64 hex>" → "<hex>". Anything else is refused: the digest becomes a file name. */
export function digestHex (digest: string): string {
  const m = /^sha256:([a-f0-9]{64})$/.exec(digest)
  if (m === null) throw new EnrootError('DIGEST', `Unsupported digest: ${digest}`, { hint: 'Only sha256 digests are supported.' })
  return m[1] as string
}

export const blobPath = (l: CacheLayout, digest: string): string => join(l.blobs, digestHex(digest))
export const blobLock = (l: CacheLayout, digest: string): string => join(l.locks, `blob-${digestHex(digest)}.lock`)

const checkKey = (key: string): string => {
  if (!/^[a-f0-9]{64}$/.test(key)) throw new EnrootError('INTERNAL', `Malformed image key: ${key}`)
  return key
}
export const imagePath = (l: CacheLayout, key: string): string => join(l.images, `${checkKey(key)}.sqsh`)
export const imageMetaPath = (l: CacheLayout, key: string): string => join(l.images, `${checkKey(key)}.json`)
export const imageLock = (l: CacheLayout, key: string): string => join(l.locks, `image-${checkKey(key)}.lock`)

/** Everything that changes the bytes of a converted image. Two imports share an entry only if all are equal. */
export interface ImageKeyInput {
  /** digest of the per-platform manifest (covers the config and every layer) */
  manifestDigest: string
  arch: string
  /** ENROOT_SQUASH_OPTIONS as given */
  squashOptions: string
  /** the flattener's version: a new converter must not reuse images the old one made */
  converter: string
  /** SOURCE_DATE_EPOCH when set: it changes the squashfs timestamps */
  sourceDateEpoch?: string
  /** the files the import adds (/etc/rc carries the provenance URI, so `ubuntu:24.04` and `ubuntu@sha256:…` differ) */
  extraFiles: ReadonlyArray<{ path: string, content: string, mode: number }>
}

/** A fixed-order JSON of the inputs, hashed: stable across runs and readable in images/<key>.json. */
export function imageKeyMaterial (k: ImageKeyInput): string {
  return JSON.stringify({
    layout: LAYOUT_VERSION,
    manifestDigest: k.manifestDigest,
    arch: k.arch,
    squashOptions: k.squashOptions,
    converter: k.converter,
    sourceDateEpoch: k.sourceDateEpoch ?? null,
    extraFiles: [...k.extraFiles].sort((a, b) => a.path < b.path ? -1 : a.path > b.path ? 1 : 0)
      .map(f => [f.path, f.mode, f.content])
  })
}

export const imageKey = (k: ImageKeyInput): string => createHash('sha256').update(imageKeyMaterial(k)).digest('hex')
