// enroot's fstab dialect (spec §5.6) turned into MountOp data. Nothing here touches the system: the native
// side resolves each target inside the rootfs (confined: an escape fails with EXDEV) and applies the list.
import { resolve, isAbsolute } from 'node:path'
import type { MountOp } from '../runtime/plan-types.js'
import { EnrootError, invalidArgument } from '../util/errors.js'
import { substitute, type Env } from './envfile.js'

/** Linux MS_* constants (include/uapi/linux/mount.h). */
export const MS = {
  RDONLY: 1,
  NOSUID: 2,
  NODEV: 4,
  NOEXEC: 8,
  SYNCHRONOUS: 16,
  REMOUNT: 32,
  MANDLOCK: 64,
  DIRSYNC: 128,
  NOATIME: 1024,
  NODIRATIME: 2048,
  BIND: 4096,
  MOVE: 8192,
  REC: 16384,
  SILENT: 32768,
  UNBINDABLE: 1 << 17,
  PRIVATE: 1 << 18,
  SLAVE: 1 << 19,
  SHARED: 1 << 20,
  RELATIME: 1 << 21,
  I_VERSION: 1 << 23,
  STRICTATIME: 1 << 24,
  LAZYTIME: 1 << 25
} as const

/** option word → [bits, clear?]; the same table as enroot-mount's. */
const FLAG_OPTS: Readonly<Record<string, readonly [number, boolean]>> = {
  async: [MS.SYNCHRONOUS, true],
  atime: [MS.NOATIME, true],
  bind: [MS.BIND, false],
  dev: [MS.NODEV, true],
  diratime: [MS.NODIRATIME, true],
  dirsync: [MS.DIRSYNC, false],
  exec: [MS.NOEXEC, true],
  iversion: [MS.I_VERSION, false],
  loud: [MS.SILENT, true],
  mand: [MS.MANDLOCK, false],
  noatime: [MS.NOATIME, false],
  nodev: [MS.NODEV, false],
  nodiratime: [MS.NODIRATIME, false],
  noexec: [MS.NOEXEC, false],
  noiversion: [MS.I_VERSION, true],
  nomand: [MS.MANDLOCK, true],
  norelatime: [MS.RELATIME, true],
  nostrictatime: [MS.STRICTATIME, true],
  nosuid: [MS.NOSUID, false],
  rbind: [MS.BIND | MS.REC, false],
  relatime: [MS.RELATIME, false],
  remount: [MS.REMOUNT, false],
  ro: [MS.RDONLY, false],
  rw: [MS.RDONLY, true],
  silent: [MS.SILENT, false],
  strictatime: [MS.STRICTATIME, false],
  suid: [MS.NOSUID, true],
  sync: [MS.SYNCHRONOUS, false],
  lazytime: [MS.LAZYTIME, false],
  nolazytime: [MS.LAZYTIME, true]
}

/** propagation words, applied after the mount by separate calls */
const PROPAGATION: Readonly<Record<string, number>> = {
  shared: MS.SHARED,
  rshared: MS.SHARED | MS.REC,
  slave: MS.SLAVE,
  rslave: MS.SLAVE | MS.REC,
  private: MS.PRIVATE,
  rprivate: MS.PRIVATE | MS.REC,
  unbindable: MS.UNBINDABLE,
  runbindable: MS.UNBINDABLE | MS.REC
}

/** words meaningful to mount(8) only; enroot ignores them (nofail is also read below) */
const FSTAB_ONLY = new Set(['auto', 'noauto', 'defaults', 'group', 'nogroup', 'nofail', 'owner', 'noowner', 'user', 'nouser', 'users', 'nousers'])
const EXTENSIONS = new Set(['x-create=dir', 'x-create=file', 'x-create=auto', 'x-move', 'x-detach'])

/** enroot-mount's "looks like options": contains a comma or is a known option word. */
function isOptions (field: string): boolean {
  return field.includes(',') || Object.hasOwn(FLAG_OPTS, field) || Object.hasOwn(PROPAGATION, field) ||
    FSTAB_ONLY.has(field) || EXTENSIONS.has(field)
}

/** getmntent's decoder: \040 space, \011 tab, \012 newline, \134 backslash (any 3-digit octal). */
export function unescapeField (s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)))
}

export interface FstabEntry {
  /** effective pass: only -1 (before hooks) and 0 (after hooks) are ever mounted */
  pass: number
  op: MountOp
}

/** The pass rule: a non-zero freq with a zero or missing pass is the pass (so `a b c d -1` is pass -1). */
function effectivePass (freq: string | undefined, pass: string | undefined): number {
  const n = (s: string | undefined): number => { const v = parseInt(s ?? '', 10); return Number.isNaN(v) ? 0 : v }
  const p = n(pass)
  const f = n(freq)
  return p === 0 && f !== 0 ? f : p
}

/** Options → MountOp fields, in order, later words overriding earlier ones. */
function applyOptions (opts: string): Pick<MountOp, 'flags' | 'propagation' | 'data' | 'create' | 'detach' | 'move' | 'nofail' | 'silent'> {
  let flags = 0
  let create: MountOp['create'] = 'none'
  let detach = false
  let move = false
  let nofail = false
  let silent = false
  const propagation: number[] = []
  const data: string[] = []
  for (const w of opts.split(',')) {
    if (w === '') continue
    const f = FLAG_OPTS[w]
    if (f !== undefined) {
      flags = f[1] ? flags & ~f[0] : flags | f[0]
      if (w === 'silent') silent = true
      if (w === 'loud') silent = false
    } else if (Object.hasOwn(PROPAGATION, w)) {
      propagation.push(PROPAGATION[w] as number)
    } else if (w.startsWith('x-create=') && EXTENSIONS.has(w)) {
      create = w.slice('x-create='.length) as MountOp['create']
    } else if (w === 'x-detach') {
      detach = true
    } else if (w === 'x-move') {
      move = true
      flags |= MS.MOVE
    } else if (w === 'nofail') {
      nofail = true
    } else if (FSTAB_ONLY.has(w)) {
      // ignored, as mount(8)-only words are
    } else {
      data.push(w)
    }
  }
  return { flags, propagation, data: data.join(','), create, detach, move, nofail, silent }
}

/**
 * Parse one fstab line (already split into fields and unescaped). Returns undefined for the omitted-field
 * rules' failure, so the caller can name the line and file.
 */
function inferFields (fields: string[]): [string, string, string, string] | undefined {
  let [src = '', tgt = '', type = '', opts = ''] = fields
  if (isOptions(tgt) && type === '' && opts === '') {
    // rule 1: `/src bind` binds /src onto /src
    opts = tgt; type = 'none'; tgt = ''
  } else if (isOptions(type) && opts === '') {
    // rule 2: `/src /dst bind`, the pyxis form `SRC DST x-create=auto,rbind,...`
    opts = type; type = 'none'
    if (tgt === 'none') tgt = ''
  }
  if (src === 'tmpfs' && (type === '' || type === 'none')) {
    type = 'tmpfs'
  } else {
    // rule 3: `/src` alone is a recursive bind of /src onto /src, created as needed
    if (tgt === '') tgt = src
    if (type === '' || type === 'none') {
      type = 'none'
      if (opts === '') opts = 'rbind,x-create=auto'
    }
  }
  if (src === '' || tgt === '' || type === '') return undefined
  return [src, tgt, type, opts]
}

export interface ParseOptions {
  /** `${VAR}` substitution (image fstab, mounts.d); config mounts() and --mount are not substituted */
  env?: Env
  /** relative bind sources resolve against the caller's directory (enroot-mount does not chdir) */
  cwd?: string
}

/** Parse fstab text; `origin` names the file in errors and in each op ("<file>:<line>"). */
export function parseFstab (text: string, origin: string, opts: ParseOptions = {}): FstabEntry[] {
  const body = opts.env === undefined ? text : substitute(text, opts.env)
  const out: FstabEntry[] = []
  body.split('\n').forEach((line, i) => {
    const entry = parseLine(line, origin, `${origin}:${i + 1}`, opts.cwd)
    if (entry !== undefined) out.push(entry)
  })
  return out
}

function parseLine (line: string, file: string, where: string, cwd: string | undefined): FstabEntry | undefined {
  const trimmed = line.trim()
  if (trimmed === '' || trimmed.startsWith('#')) return undefined
  const fields = trimmed.split(/[ \t]+/).map(unescapeField)
  const f = inferFields(fields)
  if (f === undefined) throw new EnrootError('CONFIG', `invalid fstab entry: "${line}" at ${file}`)
  const [src, target, fstype, optText] = f
  const o = applyOptions(optText)
  const isBind = (o.flags & MS.BIND) !== 0 || o.move
  const source = isBind && cwd !== undefined && !isAbsolute(src) ? resolve(cwd, src) : src
  return { pass: effectivePass(fields[4], fields[5]), op: { source, target, fstype, ...o, origin: where } }
}

const MOUNT_ARG = /^[^\s]+(:[^\s]+)*$/

/** `--mount SRC:DST[:TYPE[:OPTS]]`: an fstab line with ':' as the separator; no whitespace, no empty fields. */
export function parseMountArg (spec: string, cwd: string): FstabEntry {
  if (!MOUNT_ARG.test(spec) || spec.split(':').some(p => p === '')) throw invalidArgument(spec)
  const entry = parseLine(spec.split(':').join(' '), '--mount', '--mount', cwd)
  if (entry === undefined) throw invalidArgument(spec)
  return entry
}

/** Split entries into the two passes that are mounted; any other pass is silently ignored, as in enroot. */
export function splitPasses (entries: readonly FstabEntry[]): { early: MountOp[], late: MountOp[] } {
  return {
    early: entries.filter(e => e.pass === -1).map(e => e.op),
    late: entries.filter(e => e.pass === 0).map(e => e.op)
  }
}
