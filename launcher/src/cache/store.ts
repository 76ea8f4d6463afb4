// The content-addressed cache (doc/cache.md): registry blobs by digest, converted images by key.
// Each entry is produced at most once across processes and nodes (lock.ts), in $CACHE/tmp, checked, and
// published with a no-replace link (publish.ts). Readers never take a lock: an entry that exists is complete.
//
// What the warm path trusts, and why it does not re-hash: an entry can only appear through publishEntry
// after verification (the registry client hashes the stream; we check the size), and only someone who can
// write the cache directory can change it, which trust.ts restricts to the cache's owner. Re-hashing a
// 200 MB layer costs ~0.4 s here, twice the whole warm-import budget, and protects only against that owner
// (or bit rot). A blob's size is still compared on every use: it is free and catches a truncated file.
import { makeDirsAsync } from '../util/fs.js'
import { promises as fsp, unlinkSync } from 'node:fs'
import { join } from 'node:path'
import { EnrootError, fromSystemError } from '../util/errors.js'
import { log } from '../util/log.js'
import { acquire, newNonce, describeOwner, type LockOwner } from './lock.js'
import type { Config } from '../config/load.js'
import { onInterrupt } from './interrupt.js'
import { publishEntry } from './publish.js'
import { checkCacheTrust, type CacheAccess } from './trust.js'
import { cacheLayout, blobPath, blobLock, imagePath, imageLock, imageMetaPath, digestHex, type CacheLayout } from './layout.js'

export interface StoreOptions {
  /** ENROOT_CACHE_PATH */
  root: string
  /** ENROOT_LOCK_TIMEOUT, seconds; 0 waits forever */
  lockTimeoutS: number
  /** ENROOT_LOCK_STALE, seconds */
  lockStaleS: number
  /** a private directory where entries go when the cache is read-only to us (a shared cache we cannot write) */
  scratch: string
  /** told when we start waiting for another process's download or build */
  onWait?: (what: string, owner: LockOwner | undefined) => void
}

/** Writes the entry's bytes into `tmpPath` (which does not exist yet). Must verify what it writes. */
export type Producer = (tmpPath: string) => Promise<void>

export interface CacheStore {
  readonly layout: CacheLayout
  readonly access: CacheAccess
  ensureBlob: (digest: string, size: number, fetch: Producer) => Promise<{ path: string, fetched: boolean }>
  ensureImage: (key: string, build: Producer, material?: string) => Promise<{ path: string, built: boolean }>
  /** may the user's output be a hard link to this entry (a private cache we own), or must it be a copy? */
  mayLinkOutput: (entry: string) => boolean
}

const ENTRY_DIRS = ['blobs', 'blobs/sha256', 'images', 'tmp', 'locks']

/** Open (creating if needed) the cache at opts.root, after checking that it can be trusted (trust.ts). */
export async function openCache (opts: StoreOptions): Promise<CacheStore> {
  // enroot creates its directories with umask 077: a new per-user cache is private.
  await makeDirsAsync(opts.root, 0o700)
  const uid = process.getuid?.() ?? 0
  const access = checkCacheTrust(opts.root, uid, ENTRY_DIRS)
  const layout = cacheLayout(access.root)
  if (access.writable) {
    // Subdirectories take the root's read bits (a dedicated-account cache stays readable by everyone).
    const dirMode = (access.rootMode & 0o755) | 0o700
    for (const rel of ENTRY_DIRS) {
      const dir = join(layout.root, rel)
      try { await fsp.mkdir(dir); await fsp.chmod(dir, dirMode) } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw fromSystemError(err, dir)
      }
    }
  }
  return new Store(opts, layout, access)
}

class Store implements CacheStore {
  readonly layout: CacheLayout
  readonly access: CacheAccess
  private readonly opts: StoreOptions
  /** read-only bits for entries: never rewritten, readable by whom the cache root lets in */
  private readonly fileMode: number
  /** one production per entry per process (a manifest may list the same layer twice) */
  private readonly inflight = new Map<string, Promise<{ path: string, made: boolean }>>()

  constructor (opts: StoreOptions, layout: CacheLayout, access: CacheAccess) {
    this.opts = opts
    this.layout = layout
    this.access = access
    this.fileMode = 0o400 | (access.rootMode & 0o044)
  }

  mayLinkOutput (entry: string): boolean {
    // Our private scratch copy (a read-only cache lacked it) is ours to hand over; it is removed afterwards.
    if (entry.startsWith(this.opts.scratch + '/')) return true
    return this.access.writable && !this.access.shared && entry.startsWith(this.layout.root + '/')
  }

  async ensureBlob (digest: string, size: number, fetch: Producer): Promise<{ path: string, fetched: boolean }> {
    const hex = digestHex(digest)
    const final = blobPath(this.layout, digest)
    const good = async (): Promise<string | undefined> => await sizeIs(final, size)
    const hit = await good()
    if (hit !== undefined) return { path: hit, fetched: false }
    const make: Producer = async (tmp) => {
      await fetch(tmp)
      const got = await fsp.stat(tmp).then(st => st.size, () => -1)
      if (got !== size) throw new EnrootError('DIGEST', `Size mismatch: ${digest}: expected ${size} bytes, got ${got}`)
    }
    const r = await this.once(final, async () => await this.produce(`blob ${digest}`, hex, final, blobLock(this.layout, digest), good, make))
    return { path: r.path, fetched: r.made }
  }

  async ensureImage (key: string, build: Producer, material?: string): Promise<{ path: string, built: boolean }> {
    const final = imagePath(this.layout, key)
    const good = async (): Promise<string | undefined> => await nonEmptyFile(final)
    const hit = await good()
    if (hit !== undefined) return { path: hit, built: false }
    const make: Producer = async (tmp) => {
      await build(tmp)
      const st = await fsp.stat(tmp).catch(() => undefined)
      if (st === undefined || !st.isFile() || st.size === 0) throw new EnrootError('INTERNAL', `The image builder produced no file: ${tmp}`)
      // Informational: what the key was made of. Written before the image, so an image always has one.
      if (material !== undefined && this.access.writable) await this.writeMeta(key, material, st.size)
    }
    const r = await this.once(final, async () => await this.produce(`image ${key.slice(0, 12)}`, `${key}.sqsh`, final, imageLock(this.layout, key), good, make))
    return { path: r.path, built: r.made }
  }

  private async once (final: string, fn: () => Promise<{ path: string, made: boolean }>): Promise<{ path: string, made: boolean }> {
    const running = this.inflight.get(final)
    if (running !== undefined) return { path: (await running).path, made: false }
    const p = fn()
    this.inflight.set(final, p)
    try { return await p } finally { this.inflight.delete(final) }
  }

  /** Single-flight production of one entry: wait for another producer, or produce and publish it ourselves. */
  private async produce (what: string, name: string, final: string, lockPath: string,
    good: () => Promise<string | undefined>, make: Producer): Promise<{ path: string, made: boolean }> {
    if (!this.access.writable) return await this.producePrivately(name, good, make)
    const got = await acquire(lockPath, {
      timeoutS: this.opts.lockTimeoutS,
      staleS: this.opts.lockStaleS,
      done: good,
      onWait: (owner) => this.opts.onWait?.(what, owner)
    })
    if (got.kind === 'done') return { path: got.value, made: false }
    const lock = got.lock
    const tmp = join(this.layout.tmp, `${name}.${lock.owner.nonce}.part`)
    const forget = onInterrupt(() => { try { unlinkSync(tmp) } catch {} })
    try {
      // A dead producer's partial file is ours to delete now that we hold its lock.
      for (const o of lock.tookOverFrom) await fsp.unlink(join(this.layout.tmp, `${name}.${o.nonce}.part`)).catch(() => {})
      await this.removeDamaged(final, good)
      await make(tmp)
      await publishEntry(tmp, final, this.fileMode)
    } catch (err) {
      throw err instanceof EnrootError ? err : fromSystemError(err, final)
    } finally {
      await fsp.unlink(tmp).catch(() => {})
      forget()
      await lock.release()
    }
    const path = await good()
    if (path === undefined) throw new EnrootError('CACHE', `Cache entry is missing right after publishing it: ${final}`)
    return { path, made: true }
  }

  /** An entry that exists but fails its check (truncated by hand, disk trouble). Only a lock holder removes it. */
  private async removeDamaged (final: string, good: () => Promise<string | undefined>): Promise<void> {
    const st = await fsp.stat(final).catch(() => undefined)
    if (st === undefined || await good() !== undefined) return
    const aside = join(this.layout.tmp, `damaged.${newNonce()}`)
    await fsp.rename(final, aside)
    await fsp.unlink(aside)
    log.warn(`Removed a damaged cache entry: ${final}`)
  }

  /** A cache we may not write: produce into our private scratch directory, no sharing, no locks. */
  private async producePrivately (name: string, good: () => Promise<string | undefined>, make: Producer): Promise<{ path: string, made: boolean }> {
    const hit = await good()
    if (hit !== undefined) return { path: hit, made: false }
    await makeDirsAsync(this.opts.scratch, 0o700)
    const path = join(this.opts.scratch, name)
    const tmp = `${path}.${newNonce()}.part`
    try {
      await make(tmp)
      await fsp.rename(tmp, path)
    } catch (err) {
      await fsp.unlink(tmp).catch(() => {})
      throw err instanceof EnrootError ? err : fromSystemError(err, path)
    }
    return { path, made: true }
  }

  private async writeMeta (key: string, material: string, size: number): Promise<void> {
    const meta = imageMetaPath(this.layout, key)
    const tmp = join(this.layout.tmp, `${key}.json.${newNonce()}`)
    await fsp.writeFile(tmp, JSON.stringify({ key, size, created: new Date().toISOString(), material: JSON.parse(material) as unknown }, null, 2) + '\n', { mode: this.fileMode })
    await fsp.rename(tmp, meta)
  }
}

async function sizeIs (path: string, size: number): Promise<string | undefined> {
  const st = await fsp.stat(path).catch(() => undefined)
  return st !== undefined && st.isFile() && st.size === size ? path : undefined
}

async function nonEmptyFile (path: string): Promise<string | undefined> {
  const st = await fsp.stat(path).catch(() => undefined)
  return st !== undefined && st.isFile() && st.size > 0 ? path : undefined
}

/**
 * The cache of one import or load as configured (ENROOT_CACHE_PATH, lock settings), with a private
 * scratch directory on ENROOT_TEMP_PATH (node-local): the flattener's spool and the entries produced when
 * the cache is read-only to us. The scratch is created on first use; the caller removes it.
 */
export async function openConfiguredCache (cfg: Config): Promise<{ store: CacheStore, scratch: string }> {
  const scratch = join(cfg.get('ENROOT_TEMP_PATH') ?? '/tmp', `enroot.${newNonce()}`)
  const store = await openCache({
    root: cfg.get('ENROOT_CACHE_PATH') ?? '',
    lockTimeoutS: cfg.int('ENROOT_LOCK_TIMEOUT'),
    lockStaleS: cfg.int('ENROOT_LOCK_STALE'),
    scratch,
    onWait: (what, owner) => { log.info(`Waiting for ${describeOwner(owner)}, which is producing ${what}`) }
  })
  return { store, scratch }
}
