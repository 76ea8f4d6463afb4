// A cross-process, cross-node lock for cache entries that works where flock does not (NFS without lockd,
// Lustre mounted without -o flock, flock that is node-local). The protocol is in doc/cache.md; in short:
//
//  * acquire: write our owner record to a private file, then link() it to the lock name. link() is atomic
//    and refuses to replace on every NFS version and on Lustre, and the lock appears with its content.
//  * heartbeat: the holder sets the lock's mtime every few seconds.
//  * wait: a waiter polls (with jitter) for the finished entry or for the lock to go away.
//  * stale: a lock whose mtime a waiter has seen unchanged for ENROOT_LOCK_STALE seconds *by its own clock*
//    (so clock skew between nodes does not matter), or whose owner is a dead process on this very host
//    (same boot id and pid namespace), is taken over: rename it aside, check the renamed file is the one
//    judged stale (else put it back), delete it, retry.
//
// The lock only makes the work happen once. Safety never depends on it: entries are verified and then
// published with a link() that never replaces, so two holders (a paused process whose lock was taken
// over) just do the same work twice.
import { existsSync, promises as fsp, readFileSync, watch, type FSWatcher, readlinkSync, linkSync, renameSync, unlinkSync, openSync, fstatSync, closeSync, readSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import { basename, dirname, join } from 'node:path'
import { EnrootError } from '../util/errors.js'
import { log } from '../util/log.js'
import { onInterrupt } from './interrupt.js'

export interface LockOwner {
  host: string
  pid: number
  /** /proc/sys/kernel/random/boot_id: a pid means nothing after a reboot */
  bootId: string
  /** pid namespace: a pid means nothing in another container on the same host */
  pidns: string
  /** the process's start time in clock ticks: guards against pid reuse */
  pidStart: string
  uid: number
  nonce: string
  /** ISO time the lock was taken, for messages */
  start: string
}

export interface LockOptions<T> {
  /** seconds to wait for another holder before failing; 0 waits forever (ENROOT_LOCK_TIMEOUT) */
  timeoutS: number
  /** seconds without a heartbeat after which a lock is taken over (ENROOT_LOCK_STALE) */
  staleS: number
  /** the result another holder may publish; checked before every attempt and right after acquiring */
  done: () => Promise<T | undefined>
  /** called once when we start waiting for someone else (for an [INFO] line) */
  onWait?: (owner: LockOwner | undefined) => void
}

export type Acquired<T> = { kind: 'done', value: T } | { kind: 'held', lock: HeldLock }

const readProc = (p: string): string => { try { return readFileSync(p, 'utf8').trim() } catch { return '' } }
const procStart = (pid: number): string => {
  // Field 22 of /proc/PID/stat; the command name (field 2) may contain spaces, so count from the last ')'.
  const stat = readProc(`/proc/${pid}/stat`)
  return stat === '' ? '' : (stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '')
}
const readLink = (p: string): string => { try { return readlinkSync(p) } catch { return '' } }

let selfCache: Omit<LockOwner, 'nonce' | 'start'> | undefined
function self (): Omit<LockOwner, 'nonce' | 'start'> {
  selfCache ??= {
    host: hostname(),
    pid: process.pid,
    bootId: readProc('/proc/sys/kernel/random/boot_id'),
    pidns: readLink('/proc/self/ns/pid'),
    pidStart: procStart(process.pid),
    uid: process.getuid?.() ?? -1
  }
  return selfCache
}

export const newNonce = (): string => randomBytes(8).toString('hex')

/** Describe an owner for messages: "pid 123 on node7 since 2026-…". */
export function describeOwner (o: LockOwner | undefined): string {
  return o === undefined ? 'an unknown process' : `pid ${o.pid} on ${o.host} (uid ${o.uid}) since ${o.start}`
}

/** Is the owner a process on this host, in our pid namespace, that no longer exists? */
export function ownerIsDeadHere (o: LockOwner | undefined): boolean {
  if (o === undefined) return false
  const me = self()
  if (o.host !== me.host || o.bootId !== me.bootId || o.bootId === '' || o.pidns !== me.pidns || o.pidns === '') return false
  // kill(0) and kill(-N) would probe process groups: only a plain positive pid can be judged.
  if (!Number.isSafeInteger(o.pid) || o.pid <= 0) return false
  try {
    process.kill(o.pid, 0)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return true
    // EPERM: alive, but someone else's. Fall through to the pid-reuse check.
  }
  const now = procStart(o.pid)
  return now !== '' && o.pidStart !== '' && now !== o.pidStart
}

export interface Observation { owner: LockOwner | undefined, ino: number, mtimeMs: number }

/** open+fstat+read: open() revalidates attributes on NFS (close-to-open), a bare stat may be served from cache. */
export function observe (path: string): Observation | undefined {
  let fd: number
  try { fd = openSync(path, 'r') } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  try {
    const st = fstatSync(fd)
    const buf = Buffer.alloc(4096)
    const n = readSync(fd, buf, 0, buf.length, 0)
    let owner: LockOwner | undefined
    try { owner = JSON.parse(buf.subarray(0, n).toString('utf8')) as LockOwner } catch { owner = undefined }
    return { owner, ino: st.ino, mtimeMs: st.mtimeMs }
  } finally { closeSync(fd) }
}


/**
 * Sleeps ms, or less when something changes next to the lock. The backed-off polls alone cost a waiter up to half a
 * poll after the holder is done: 0.1-0.2 s at the end of a conversion, on every node of a cold
 * `srun -N3 --container-image` but the one that converted.
 */
async function sleepUntilChange (lockPath: string, ms: number): Promise<void> {
  let watcher: FSWatcher | undefined
  try {
    await new Promise<void>(resolve => {
      const timer = setTimeout(resolve, ms)
      const wake = (): void => { clearTimeout(timer); resolve() }
      try {
        watcher = watch(dirname(lockPath), { persistent: false }, wake)
        watcher.on('error', () => {})
      } catch {}
      // released between our last look and the watch: no event will come
      if (!existsSync(lockPath)) wake()
    })
  } finally {
    watcher?.close()
  }
}

export class HeldLock {
  readonly path: string
  readonly owner: LockOwner
  /** owners of stale locks we removed on the way in: their partial files can be deleted */
  readonly tookOverFrom: LockOwner[]
  /** set when the heartbeat finds the lock is no longer ours (we were judged stale while paused) */
  lost = false
  private timer: NodeJS.Timeout | undefined
  private unregister: () => void
  private released = false

  constructor (path: string, owner: LockOwner, tookOverFrom: LockOwner[], heartbeatMs: number) {
    this.path = path
    this.owner = owner
    this.tookOverFrom = tookOverFrom
    this.timer = setInterval(() => { void this.beat() }, heartbeatMs)
    this.timer.unref()
    this.unregister = onInterrupt(() => { this.releaseSync() })
  }

  private async beat (): Promise<void> {
    if (this.released || this.lost) return
    try {
      const fh = await fsp.open(this.path, 'r')
      try {
        const text = (await fh.readFile('utf8'))
        if (!text.includes(`"nonce":"${this.owner.nonce}"`)) { this.lost = true; log.debug(`lost cache lock ${this.path}`); return }
        const now = new Date()
        await fh.utimes(now, now)
      } finally { await fh.close() }
    } catch (err) {
      // ENOENT: a taker has it renamed aside for a moment; the next beat tells.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log.debug(`cache lock heartbeat ${this.path}: ${String(err)}`)
    }
  }

  /** Remove the lock if it is still ours. Synchronous so that signal handlers can call it. */
  releaseSync (): void {
    if (this.released) return
    this.released = true
    if (this.timer !== undefined) clearInterval(this.timer)
    this.unregister()
    removeIfOwner(this.path, this.owner.nonce)
  }

  async release (): Promise<void> { this.releaseSync() }
}

/**
 * (Exported for tests.) Rename the lock aside, then decide: if it is what we expected (by nonce, or by inode+mtime for a stale
 * one), delete it; otherwise someone replaced it meanwhile, so put it back (without replacing anything).
 */
export function removeLockIf (path: string, expect: (o: Observation) => boolean): boolean {
  const aside = join(dirname(path), `.${basename(path)}.aside.${newNonce()}`)
  try { renameSync(path, aside) } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw err
  }
  const seen = observe(aside)
  const ours = seen !== undefined && expect(seen)
  if (!ours) {
    try { linkSync(aside, path) } catch { /* a new lock exists already: its holder sees it, ours is gone */ }
  }
  try { unlinkSync(aside) } catch {}
  return ours
}

function removeIfOwner (path: string, nonce: string): void {
  try { removeLockIf(path, o => o.owner?.nonce === nonce) } catch (err) { log.debug(`releasing ${path}: ${String(err)}`) }
}

/** Try once to create the lock. true: it is ours. */
async function tryCreate (path: string, owner: LockOwner): Promise<boolean> {
  const mine = join(dirname(path), `.${basename(path)}.${owner.nonce}`)
  try {
    await fsp.writeFile(mine, JSON.stringify(owner), { mode: 0o644 })
  } catch (err) {
    // Someone cleaned up locks/ itself: recreate it rather than fail.
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    await fsp.mkdir(dirname(path), { recursive: true, mode: 0o700 })
    await fsp.writeFile(mine, JSON.stringify(owner), { mode: 0o644 })
  }
  try {
    await fsp.link(mine, path)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      // NFS: the reply to a link() that succeeded can be lost and the retry answer EEXIST. Our file's
      // link count is the truth (the classic NFS lock-file recipe).
      try { return (await fsp.stat(mine)).nlink === 2 } catch { return false }
    }
    throw err
  } finally {
    await fsp.unlink(mine).catch(() => {})
  }
}

/**
 * Wait until either `done()` yields a value (someone else produced the entry) or we hold the lock.
 * The caller must release a held lock (finally), and should re-check nothing: done() is re-checked here
 * right after acquiring, because the previous holder may have published just before releasing.
 */
export async function acquire<T> (path: string, opts: LockOptions<T>): Promise<Acquired<T>> {
  const staleMs = Math.max(0.1, opts.staleS) * 1000
  const heartbeatMs = Math.min(5000, Math.max(100, staleMs / 4))
  const pollMaxMs = Math.min(1000, Math.max(50, staleMs / 10))
  const startedAt = performance.now()
  const tookOverFrom: LockOwner[] = []
  let seen: (Observation & { since: number }) | undefined
  let poll = 20
  let waiting = false

  for (;;) {
    const early = await opts.done()
    if (early !== undefined) return { kind: 'done', value: early }

    const owner: LockOwner = { ...self(), nonce: newNonce(), start: new Date().toISOString() }
    if (await tryCreate(path, owner)) {
      const held = new HeldLock(path, owner, tookOverFrom, heartbeatMs)
      let late: T | undefined
      try { late = await opts.done() } catch (err) { held.releaseSync(); throw err }
      if (late !== undefined) { held.releaseSync(); return { kind: 'done', value: late } }
      return { kind: 'held', lock: held }
    }

    const obs = observe(path)
    if (obs === undefined) continue // released between our attempt and our look: try again now
    const now = performance.now()
    if (seen === undefined || seen.ino !== obs.ino || seen.mtimeMs !== obs.mtimeMs || seen.owner?.nonce !== obs.owner?.nonce) {
      seen = { ...obs, since: now } // a heartbeat (or a new holder): restart our own stale clock
    }
    const dead = ownerIsDeadHere(obs.owner)
    if (dead || now - seen.since >= staleMs) {
      const judged = seen
      // Same nonce (a new lock may reuse the inode number and, within a clock tick, the mtime), same heartbeat.
      const removed = removeLockIf(path, o => o.owner?.nonce === judged.owner?.nonce && o.ino === judged.ino && o.mtimeMs === judged.mtimeMs)
      if (removed) {
        log.warn(`Removed a stale cache lock ${path} held by ${describeOwner(obs.owner)}${dead ? ' (process gone)' : ` (no heartbeat for ${opts.staleS} s)`}`)
        if (obs.owner !== undefined) tookOverFrom.push(obs.owner)
      }
      seen = undefined
      continue
    }
    if (opts.timeoutS > 0 && now - startedAt >= opts.timeoutS * 1000) {
      throw new EnrootError('CACHE', `Timed out after ${opts.timeoutS} s waiting for cache lock ${path} held by ${describeOwner(obs.owner)}`, {
        hint: 'Another import of the same content is still running. Raise ENROOT_LOCK_TIMEOUT (0 waits forever); a lock whose holder died is taken over after ENROOT_LOCK_STALE seconds without a heartbeat.'
      })
    }
    if (!waiting) { waiting = true; opts.onWait?.(obs.owner) }
    // Jitter spreads many waiters' polls (a whole cluster may wait on one lock on one NFS server). A
    // change in the lock's directory (the holder releasing it) ends the wait at once where the kernel
    // reports it (inotify: local filesystems; not NFS changes made by another machine, hence the polls).
    await sleepUntilChange(path, poll * (0.5 + Math.random()))
    poll = Math.min(pollMaxMs, poll * 1.5)
  }
}
