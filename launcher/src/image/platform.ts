// --arch handling and manifest-list selection (spec §3.4).
// We improve on enroot on purpose: Docker names (amd64, arm64) are accepted next to kernel names, and
// selection checks os=linux and the variant, not only the architecture (enroot could pick windows/amd64
// or arm/v6 for arm/v7). Attestation entries that BuildKit adds to indexes are never picked.
import { EnrootError } from '../util/errors.js'
import type { Descriptor, Platform } from './types.js'

export interface WantedPlatform { architecture: string, variant?: string }

// kernel (`uname -m`) and Docker spellings → OCI architecture, with the variant a bare name implies
const ARCHES: Record<string, WantedPlatform> = {
  x86_64: { architecture: 'amd64' },
  amd64: { architecture: 'amd64' },
  aarch64: { architecture: 'arm64', variant: 'v8' },
  arm64: { architecture: 'arm64', variant: 'v8' },
  ppc64le: { architecture: 'ppc64le' },
  s390x: { architecture: 's390x' },
  riscv64: { architecture: 'riscv64' },
  armv7l: { architecture: 'arm', variant: 'v7' },
  arm: { architecture: 'arm', variant: 'v7' }
}

/** The variant an index entry without one means (what Docker assumes, too). */
const DEFAULT_VARIANT: Record<string, string> = { arm64: 'v8', arm: 'v7' }

/** Maps `x86_64`, `amd64`, `aarch64`, `arm64`, `arm64/v8`, `linux/arm/v7`, ... ; anything else is an error. */
export function parseArch (input: string): WantedPlatform {
  const parts = input.split('/')
  if (parts.length > 1 && parts[0] === 'linux') parts.shift()
  const base = Object.hasOwn(ARCHES, parts[0] ?? '') ? ARCHES[parts[0] as string] : undefined
  if (base === undefined || parts.length > 2) throw new EnrootError('INVALID', `Unsupported architecture: ${input}`)
  const variant = parts[1] ?? base.variant
  if (variant !== undefined && !/^v[0-9]+$/.test(variant)) throw new EnrootError('INVALID', `Unsupported architecture: ${input}`)
  return variant === undefined ? { architecture: base.architecture } : { architecture: base.architecture, variant }
}

/** The host's architecture in kernel spelling, the default of --arch (enroot uses `uname -m`). */
export function hostArch (): string {
  const map: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64', arm: 'armv7l' }
  return map[process.arch] ?? process.arch
}

export const formatPlatform = (p: Partial<Platform>): string =>
  [p.os ?? '?', p.architecture ?? '?', ...(p.variant === undefined ? [] : [p.variant])].join('/')

/** BuildKit's provenance/SBOM entries: platform unknown/unknown and an annotation saying what they are. */
export function isAttestation (d: Descriptor): boolean {
  return d.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest' ||
    (d.platform?.os === 'unknown' && d.platform?.architecture === 'unknown')
}

/** Picks the linux manifest for the wanted platform; undefined when the index has none. */
export function selectManifest (entries: readonly Descriptor[], want: WantedPlatform): Descriptor | undefined {
  const wantVariant = want.variant ?? DEFAULT_VARIANT[want.architecture]
  return entries.find(d => {
    if (isAttestation(d) || d.platform === undefined) return false
    const p = d.platform
    if (p.os !== 'linux' || p.architecture !== want.architecture) return false
    return (p.variant ?? DEFAULT_VARIANT[p.architecture]) === wantVariant
  })
}

/** "linux/amd64, linux/arm64/v8" for the error message when nothing matches. */
export const listPlatforms = (entries: readonly Descriptor[]): string =>
  entries.filter(d => !isAttestation(d) && d.platform !== undefined).map(d => formatPlatform(d.platform as Platform)).join(', ')
