// The one module that loads the addon (native/), lazily, and the typed boundary to it: arguments are
// validated and serialized here; native errors ({code, errno, syscall, path}) are rethrown as
// EnrootError at the call site so that the stack points at the caller.
import { createRequire } from 'node:module'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { PACKAGE_ROOT } from '../config/install-paths.js'
import { EnrootError } from '../util/errors.js'
import { log } from '../util/log.js'
import type { MountOp } from './plan-types.js'

/** A native failure as the addon reports it (shaped like Node's fs errors). */
export interface NativeError extends Error { code: string, errno: number, syscall: string, path?: string, step: number }

export interface StartHandle { pid: number, statusFd: number, controlFd: number }

/** Namespace bits for spawnJoined. */
export const NS = { user: 1, mnt: 2, pid: 4, net: 8, ipc: 16, uts: 32, cgroup: 64 } as const

export interface JoinOptions {
  /** process whose namespaces to join */
  pid: number
  argv: string[]
  /** the complete environment (KEY=VALUE); nothing is inherited */
  env: string[]
  /** working directory, opened before joining */
  cwd?: string
  /** use /proc/PID/cwd (enroot exec) */
  cwdFromTarget?: boolean
  /** NS bits; a namespace identical to ours is skipped */
  namespaces: number
  seccomp: boolean
  /** raise every capability as ambient so a non-root mapped uid keeps them across execve (hooks) */
  ambientCaps: boolean
  /** RLIMIT_NOFILE soft limit to lower ours to before exec (the caller's, see callerNofile); 0 keeps it */
  nofile?: number
}

interface Addon {
  abiVersion: number
  startContainer: (phase1: Buffer) => StartHandle
  startLower: (lower: Buffer) => { pid: number, statusFd: number }
  waitChild: (pid: number, cb: (code: number | null, signal: number | null) => void) => void
  spawnJoined: (opts: JoinOptions & { capLast: number }) => number
  makeError: (step: number, errno: number, path: string) => NativeError
  isTerminal: (fd: number) => boolean
}

/** native/src/addon.cc's abiVersion: an addon built from other sources is refused with the fix. */
const ABI_VERSION = 4

let addon: Addon | undefined

/** Where the addon is looked for, in order. */
export function addonCandidates (env: NodeJS.ProcessEnv = process.env): string[] {
  const out = [join(PACKAGE_ROOT, 'native', 'build', 'Release', 'enroot_native.node')]
  for (const dir of (env.ENROOT_LIBRARY_PATH ?? '').split(':')) {
    if (dir !== '') out.push(join(dir, 'enroot_native.node'))
  }
  return out
}

export function loadAddon (): Addon {
  addon ??= loadFrom(addonCandidates())
  return addon
}

/** Load the first candidate that loads; one error naming every place tried and the fix otherwise. */
export function loadFrom (paths: readonly string[]): Addon {
  const require = createRequire(import.meta.url)
  const tried: string[] = []
  for (const path of paths) {
    try {
      const a = require(path) as Addon
      if (a.abiVersion !== ABI_VERSION) {
        throw new EnrootError('UNSUPPORTED', `native addon ${path} is out of date (ABI ${String(a.abiVersion)}, need ${ABI_VERSION})`, {
          hint: 'Rebuild it with: npm run build:native'
        })
      }
      log.debug(`native: loaded ${path}`)
      return a
    } catch (err) {
      if (err instanceof EnrootError) throw err
      tried.push(`${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
    }
  }
  throw new EnrootError('UNSUPPORTED', `native addon not found; tried:\n  ${tried.join('\n  ')}`, {
    hint: 'Build it with: npm run build:native'
  })
}

/** Rethrow a native error here, as an EnrootError with the native one as cause. */
export function nativeError (err: unknown, what?: string): EnrootError {
  if (err instanceof EnrootError) return err
  const e = err as NativeError
  const msg = what === undefined ? e.message : `${what}: ${e.message}`
  return new EnrootError('SYSCALL', msg, { cause: e })
}

/** isatty(fd), without creating process.stdin/stdout/stderr (and the modules behind them). */
export function isTerminal (fd: number): boolean {
  return loadAddon().isTerminal(fd)
}

export function makeStepError (step: number, errno: number, path: string): NativeError {
  return loadAddon().makeError(step, errno, path)
}

let capLastCache: number | undefined
function capLast (): number {
  if (capLastCache === undefined) {
    try { capLastCache = Number(readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8').trim()) } catch { capLastCache = 40 }
  }
  return capLastCache
}

// ---- wire format (native/src/wire.h) ----
export const TAG = {
  FLAGS: 1, ROOTFS_DIR: 2, ROOTFS_IMAGE: 3, MNTDIR: 4, SQUASHFUSE: 5, MOUNT: 6, ENV: 7, ARG: 8, RC: 9,
  CAPLAST: 10, INNER_UID: 11, INNER_GID: 12, BATCH: 14, NOFILE: 15, LOWER_PID: 16, LOWER_DIR: 17
} as const
export const FLAG = {
  USERNS: 1, REMAP: 2, PID: 4, NET: 8, IPC: 16, UTS: 32, WRITABLE: 64, SECCOMP: 128, LOGIN: 256
} as const
const CREATE = { none: 0, dir: 1, file: 2, auto: 3 } as const
const MAXPROP = 4

class Writer {
  private readonly parts: Buffer[] = []
  private record (tag: number, payload: Buffer): this {
    const head = Buffer.alloc(8)
    head.writeUInt32LE(tag, 0)
    head.writeUInt32LE(payload.length, 4)
    const pad = (4 - (payload.length % 4)) % 4
    this.parts.push(head, payload, Buffer.alloc(pad))
    return this
  }

  u32 (tag: number, v: number): this { const b = Buffer.alloc(4); b.writeUInt32LE(v >>> 0, 0); return this.record(tag, b) }
  str (tag: number, s: string): this {
    if (s.includes('\0')) throw new EnrootError('INVALID', `Invalid argument: NUL byte in ${JSON.stringify(s)}`)
    return this.record(tag, Buffer.from(`${s}\0`))
  }

  mount (m: MountOp): this {
    if (m.propagation.length > MAXPROP) throw new EnrootError('INVALID', `too many propagation flags at ${m.origin}`)
    const head = Buffer.alloc(4 * (4 + MAXPROP))
    head.writeUInt32LE(m.flags >>> 0, 0)
    head.writeUInt32LE(m.propagation.length, 4)
    m.propagation.forEach((p, i) => head.writeUInt32LE(p >>> 0, 8 + 4 * i))
    head.writeUInt32LE(CREATE[m.create], 8 + 4 * MAXPROP)
    head.writeUInt32LE((m.detach ? 1 : 0) | (m.move ? 2 : 0) | (m.nofail ? 4 : 0) | (m.silent ? 8 : 0), 12 + 4 * MAXPROP)
    const strs = [m.source, m.target, m.fstype, m.data, m.origin]
    if (strs.some(s => s.includes('\0'))) throw new EnrootError('INVALID', `NUL byte in mount entry at ${m.origin}`)
    return this.record(TAG.MOUNT, Buffer.concat([head, Buffer.from(strs.map(s => `${s}\0`).join(''))]))
  }

  done (): Buffer { return Buffer.concat(this.parts) }
}

export interface Phase1 {
  flags: number
  rootfs: { kind: 'dir', path: string } | { kind: 'squashfs', image: string }
  /** host directory for the private tmpfs (runtimeDir/mnt) */
  mntDir: string
  squashfuse: string
  innerUid: number
  innerGid: number
  earlyMounts: readonly MountOp[]
  /** RLIMIT_NOFILE soft limit the container gets back (Node raised ours); 0 leaves it */
  nofile?: number
  /** a squashfs image's lower holder (startLower) to join instead of a user namespace and squashfuse of its own */
  lower?: { pid: number, dir: string }
}

export function encodePhase1 (p: Phase1): Buffer {
  const w = new Writer().u32(TAG.FLAGS, p.flags).u32(TAG.CAPLAST, capLast())
    .u32(TAG.INNER_UID, p.innerUid).u32(TAG.INNER_GID, p.innerGid)
    .str(TAG.MNTDIR, p.mntDir).str(TAG.SQUASHFUSE, p.squashfuse)
  if (p.nofile !== undefined && p.nofile > 0) w.u32(TAG.NOFILE, Math.min(p.nofile, 0xffffffff))
  if (p.rootfs.kind === 'dir') w.str(TAG.ROOTFS_DIR, p.rootfs.path)
  else w.str(TAG.ROOTFS_IMAGE, p.rootfs.image)
  if (p.lower !== undefined && p.rootfs.kind === 'squashfs') w.u32(TAG.LOWER_PID, p.lower.pid).str(TAG.LOWER_DIR, p.lower.dir)
  for (const m of p.earlyMounts) w.mount(m)
  return w.done()
}

/** What a lower holder needs (native/src/spawn.cc holder_child). */
export function encodeLower (p: { image: string, mntDir: string, squashfuse: string, innerUid: number, innerGid: number }): Buffer {
  return new Writer().u32(TAG.CAPLAST, capLast()).u32(TAG.INNER_UID, p.innerUid).u32(TAG.INNER_GID, p.innerGid)
    .str(TAG.MNTDIR, p.mntDir).str(TAG.SQUASHFUSE, p.squashfuse).str(TAG.ROOTFS_IMAGE, p.image).done()
}

export interface Phase2 {
  /** hook mounts first, then pass 0 */
  mounts: readonly MountOp[]
  env: readonly string[]
  command: readonly string[]
  rc?: string
}

const framed = (body: Buffer): Buffer => {
  const len = Buffer.alloc(4)
  len.writeUInt32LE(body.length, 0)
  return Buffer.concat([len, body])
}

/** Phase 2 as sent on the control pipe: [u32 length][records]. */
export function encodePhase2 (p: Phase2): Buffer {
  const w = new Writer()
  for (const m of p.mounts) w.mount(m)
  for (const e of p.env) w.str(TAG.ENV, e)
  for (const a of p.command) w.str(TAG.ARG, a)
  if (p.rc !== undefined) w.str(TAG.RC, p.rc)
  return framed(w.done())
}

/** Mounts to apply now, before the next hook (a built-in hook's direct mounts); the child answers 'A'. */
export function encodeBatch (mounts: readonly MountOp[]): Buffer {
  const w = new Writer().u32(TAG.BATCH, 1)
  for (const m of mounts) w.mount(m)
  return framed(w.done())
}

// ---- status records (native/src/errors.h struct enr_msg) ----
export const MSG_SIZE = 16 + 2048
export interface StatusRecord { type: 'E' | 'W' | 'R' | 'P' | 'A', step: number, errno: number, value: number, path: string }

export function decodeRecord (b: Buffer): StatusRecord {
  const nul = b.indexOf(0, 16)
  return {
    type: String.fromCharCode(b.readUInt32LE(0)) as StatusRecord['type'],
    step: b.readInt32LE(4),
    errno: b.readInt32LE(8),
    value: b.readInt32LE(12),
    path: b.toString('utf8', 16, nul < 0 ? MSG_SIZE : nul)
  }
}

// ---- typed operations ----
export function startContainer (phase1: Buffer): StartHandle {
  const a = loadAddon()
  try { return a.startContainer(phase1) } catch (err) { throw nativeError(err) }
}

export function startLower (lower: Buffer): { pid: number, statusFd: number } {
  const a = loadAddon()
  try { return a.startLower(lower) } catch (err) { throw nativeError(err) }
}

export interface ChildExit { code: number | null, signal: number | null }

/** Reap pid without blocking the event loop (pidfd + libuv poll). */
export async function waitChild (pid: number): Promise<ChildExit> {
  const a = loadAddon()
  return await new Promise((resolve, reject) => {
    try { a.waitChild(pid, (code, signal) => { resolve({ code, signal }) }) } catch (err) { reject(nativeError(err)) }
  })
}

/** Fork, join the namespaces of opts.pid, exec opts.argv; returns the pid (wait with waitChild). */
export function spawnJoined (opts: JoinOptions): number {
  if (!Number.isInteger(opts.pid) || opts.pid < 1) throw new EnrootError('INVALID', `Invalid argument: ${opts.pid}`)
  if (opts.argv.length === 0) throw new EnrootError('INVALID', 'Invalid argument: empty command')
  for (const e of opts.env) if (!e.includes('=') || e.includes('\0')) throw new EnrootError('INVALID', `Invalid argument: ${e}`)
  const nofile = opts.nofile ?? 0
  if (!Number.isInteger(nofile) || nofile < 0) throw new EnrootError('INVALID', `Invalid argument: nofile ${nofile}`)
  const a = loadAddon()
  try { return a.spawnJoined({ ...opts, nofile: Math.min(nofile, 0xffffffff), capLast: capLast() }) } catch (err) { throw nativeError(err) }
}
