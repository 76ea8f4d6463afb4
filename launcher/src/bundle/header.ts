// The .run's shell header: header.sh (shipped next to the launcher) with the bundle's values filled in.
// The header records its own length, so the payload starts at a byte offset the header computes itself.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { PACKAGE_ROOT } from '../config/install-paths.js'
import { shq } from '../config/load.js'
import { EnrootError } from '../util/errors.js'

export interface HeaderValues {
  description: string
  /** gzip, xz, zstd, lzo, lz4 or none */
  compression: string
  /** the command the payload is piped through (`cat` for none) */
  decompress: string
  targetDir: string
  payloadSize: number
  uncompressedKb: number
  /** hex digest of the payload, or undefined without --checksum */
  sha256?: string
  runtimeVersion: string
  buildGlibc: string
  /** the launcher's script, relative to /.enroot/lib */
  entry: string
}

/** Where header.sh is: a checkout keeps it with the sources; `make install` puts it in the package's bundle/. */
export function headerCandidates (root: string = PACKAGE_ROOT): string[] {
  return [join(root, 'bundle', 'header.sh'), join(root, 'launcher', 'src', 'bundle', 'header.sh')]
}

export function readHeaderTemplate (root: string = PACKAGE_ROOT): string {
  for (const p of headerCandidates(root)) {
    try { return readFileSync(p, 'utf8') } catch {}
  }
  throw new EnrootError('NOT_FOUND', `No such file or directory: ${headerCandidates(root)[0] ?? ''}`, { hint: 'The bundle header is missing: reinstall enroot-ts (make install).' })
}

function fill (template: string, v: HeaderValues, headerSize: number): string {
  if (!/^[A-Za-z0-9._/-]+$/.test(v.entry)) throw new EnrootError('INTERNAL', `bundle: unusable launcher entry ${v.entry}`)
  const values: Record<string, string> = {
    DESCRIPTION: shq(v.description),
    COMPRESSION: shq(v.compression),
    DECOMPRESS: shq(v.decompress),
    TARGET_DIR: shq(v.targetDir),
    HEADER_SIZE: String(headerSize),
    PAYLOAD_SIZE: String(v.payloadSize),
    UNCOMPRESSED_KB: String(v.uncompressedKb),
    SHA256_SUM: shq(v.sha256 ?? '0'),
    RUNTIME_VERSION: shq(v.runtimeVersion),
    BUILD_GLIBC: shq(v.buildGlibc),
    ENTRY: v.entry
  }
  // one pass: a value that looks like a placeholder (a description) is never replaced again
  return template.replace(/@([A-Z0-9_]+)@/g, (m, name: string) => {
    const value = values[name]
    if (value === undefined) throw new EnrootError('INTERNAL', `bundle: header.sh has an unknown placeholder ${m}`)
    return value
  })
}

/** The header, with header_size equal to its own length in bytes (a fixed point: the digits settle at once). */
export function renderHeader (template: string, v: HeaderValues): string {
  let size = 0
  for (let i = 0; i < 5; i++) {
    const text = fill(template, v, size)
    const n = Buffer.byteLength(text)
    if (n === size) return text
    size = n
  }
  throw new EnrootError('INTERNAL', 'bundle: the header size does not settle')
}
