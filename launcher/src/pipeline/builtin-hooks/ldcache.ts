// Reads and writes glibc's /etc/ld.so.cache ("glibc-ld.so.cache1.1", elf/cache.c and dl-cache.h).
// Why our own writer instead of running ldconfig in the container (what nvidia-container-cli does): ldconfig
// scans every library directory of the image (tens of milliseconds to seconds), writes into the rootfs (a
// shared or read-only rootfs fails: "ldcache error", enroot#128), and needs a host binary that matches the
// image. Merging the image's cache with the injected libraries is a few hundred microseconds, and the result
// is bound over /etc/ld.so.cache from the runtime directory, so the image is never modified.
import { closeSync, constants, fstatSync, lstatSync, openSync, readlinkSync, readSync } from 'node:fs'
import { join } from 'node:path'

/** One cache entry: soname → path, with glibc's flags (library type and architecture). */
export interface CacheEntry { key: string, value: string, flags: number, hwcap: bigint }

/** FLAG_ELF_LIBC6 | architecture bits, as ldconfig -p prints "(libc6,x86-64)" etc. */
export const CACHE_FLAGS = { libc6: 0x0003, x8664: 0x0303, aarch64: 0x0a03 } as const

/** The flags of a native 64-bit library on this machine; i386 libraries (compat32) are plain libc6. */
export const nativeFlags = (arch: string = process.arch): number => arch === 'arm64' ? CACHE_FLAGS.aarch64 : CACHE_FLAGS.x8664

const OLD_MAGIC = 'ld.so-1.7.0'
const NEW_MAGIC = 'glibc-ld.so.cache1.1'
const HEADER = 48
const ENTRY = 24
// Entries pointing into the glibc-hwcaps extension (bit 62) name optimised variants of a library that has
// a baseline entry too; we drop them rather than carry the extension section over.
const HWCAP_EXTENSION = 1n << 62n

const cstr = (buf: Buffer, off: number): string => {
  const end = buf.indexOf(0, off)
  return buf.toString('utf8', off, end < 0 ? buf.length : end)
}

/** Parse a cache (the new format, alone or after the old one). Anything unrecognised gives no entries. */
export function parseLdCache (buf: Buffer): CacheEntry[] {
  let base = 0
  if (buf.toString('latin1', 0, OLD_MAGIC.length) === OLD_MAGIC) {
    if (buf.length < 16) return []
    const nOld = buf.readUInt32LE(12)
    base = (16 + nOld * 12 + 7) & ~7
  }
  if (buf.length < base + HEADER || buf.toString('latin1', base, base + NEW_MAGIC.length) !== NEW_MAGIC) return []
  const n = buf.readUInt32LE(base + 20)
  const out: CacheEntry[] = []
  for (let i = 0; i < n; i++) {
    const e = base + HEADER + i * ENTRY
    if (e + ENTRY > buf.length) break
    const flags = buf.readInt32LE(e)
    const key = buf.readUInt32LE(e + 4)
    const value = buf.readUInt32LE(e + 8)
    const hwcap = buf.readBigUInt64LE(e + 16)
    if ((hwcap & HWCAP_EXTENSION) !== 0n) continue
    if (base + key >= buf.length || base + value >= buf.length) continue
    out.push({ flags, key: cstr(buf, base + key), value: cstr(buf, base + value), hwcap })
  }
  return out
}

/** glibc's _dl_cache_libcmp: digits compare as numbers, so libfoo.so.10 sorts after libfoo.so.9. */
export function libcmp (a: string, b: string): number {
  let i = 0
  let j = 0
  const digit = (c: number): boolean => c >= 48 && c <= 57
  while (i < a.length) {
    const c1 = a.charCodeAt(i)
    const c2 = j < b.length ? b.charCodeAt(j) : 0
    if (digit(c1)) {
      if (!digit(c2)) return 1
      let v1 = 0
      let v2 = 0
      while (i < a.length && digit(a.charCodeAt(i))) v1 = v1 * 10 + a.charCodeAt(i++) - 48
      while (j < b.length && digit(b.charCodeAt(j))) v2 = v2 * 10 + b.charCodeAt(j++) - 48
      if (v1 !== v2) return v1 - v2
    } else if (digit(c2)) {
      return -1
    } else if (c1 !== c2) {
      return c1 - c2
    } else { i++; j++ }
  }
  return j < b.length ? -b.charCodeAt(j) : 0
}

/** ld.so binary-searches the table, which ldconfig sorts by libcmp descending, then by flags descending. */
export function sortEntries (entries: readonly CacheEntry[]): CacheEntry[] {
  return [...entries].sort((x, y) => libcmp(y.key, x.key) || (y.flags - x.flags) || (y.hwcap > x.hwcap ? 1 : y.hwcap < x.hwcap ? -1 : 0))
}

/** Serialise entries in the new format alone (what glibc ≥ 2.32 writes; every glibc since 2.3 reads it). */
export function writeLdCache (entries: readonly CacheEntry[]): Buffer {
  const sorted = sortEntries(entries)
  const strings: Buffer[] = []
  const offsets = new Map<string, number>()
  let strOff = HEADER + sorted.length * ENTRY
  const intern = (s: string): number => {
    const known = offsets.get(s)
    if (known !== undefined) return known
    const b = Buffer.from(`${s}\0`, 'utf8')
    offsets.set(s, strOff)
    strings.push(b)
    strOff += b.length
    return strOff - b.length
  }
  const table = Buffer.alloc(HEADER + sorted.length * ENTRY)
  table.write(NEW_MAGIC, 0, 'latin1')
  table.writeUInt32LE(sorted.length, 20)
  sorted.forEach((e, i) => {
    const o = HEADER + i * ENTRY
    table.writeInt32LE(e.flags, o)
    table.writeUInt32LE(intern(e.key), o + 4)
    table.writeUInt32LE(intern(e.value), o + 8)
    table.writeBigUInt64LE(e.hwcap, o + 16)
  })
  const body = Buffer.concat([table, ...strings])
  body.writeUInt32LE(body.length - table.length, 24) // len_strings
  body.writeUInt8(2, 28) // flags: little-endian (cache_file_new_flags_endian_little)
  return body
}

/** Replace every entry whose soname is injected: the driver's libraries must win over stubs in the image. */
export function mergeEntries (image: readonly CacheEntry[], injected: readonly CacheEntry[]): CacheEntry[] {
  const ours = new Set(injected.map(e => `${e.key}\0${e.flags}`))
  return [...image.filter(e => !ours.has(`${e.key}\0${e.flags}`)), ...injected]
}

/**
 * Resolve `rel` below `root` as the container will see it: symlinks are followed, absolute ones anchored at
 * root, and `..` stops at root (CUDA images link /usr/local/cuda → /etc/alternatives/cuda → /usr/local/cuda-12.x,
 * which read from the host would point at the host's files). Returns a host path below root, or undefined.
 */
export function resolveInRoot (root: string, rel: string): string | undefined {
  const todo = rel.split('/').filter(p => p !== '' && p !== '.')
  const done: string[] = []
  let hops = 0
  while (todo.length > 0) {
    const part = todo.shift() as string
    if (part === '..') { done.pop(); continue }
    const path = join(root, ...done, part)
    const st = lstatSync(path, { throwIfNoEntry: false })
    if (st === undefined) return undefined
    if (!st.isSymbolicLink()) { done.push(part); continue }
    if (++hops > 40) return undefined
    const target = readlinkSync(path)
    if (target.startsWith('/')) done.length = 0
    todo.unshift(...target.split('/').filter(p => p !== '' && p !== '.'))
  }
  return join(root, ...done)
}

/** Read a regular file below `root` (resolved as in the container); missing, not a file, or over `max` bytes: undefined. */
export function readConfined (root: string, rel: string, max = 64 << 20): Buffer | undefined {
  const path = resolveInRoot(root, rel)
  if (path === undefined) return undefined
  let fd: number
  try { fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK) } catch { return undefined }
  try {
    const st = fstatSync(fd)
    if (!st.isFile() || st.size > max) return undefined
    const buf = Buffer.alloc(st.size)
    let got = 0
    while (got < buf.length) {
      const n = readSync(fd, buf, got, buf.length - got, got)
      if (n === 0) break
      got += n
    }
    return buf.subarray(0, got)
  } finally { closeSync(fd) }
}
