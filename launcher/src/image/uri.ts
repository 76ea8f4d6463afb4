// docker:// URI grammar (spec §3.1): [USER@][REGISTRY#]IMAGE[:TAG|@DIGEST], Docker Hub aliasing, and the
// default output name of `enroot import` (spec §2.4).
//
// enroot matches nine bash regexes and lets leftmost-longest semantics split ambiguous input. Our rule,
// which gives the same result on every form of the table:
//   1. a trailing `@sha256:<alnum>` is the digest (a tag before it is kept for naming but not used);
//   2. a user is everything before the LAST `@` that precedes the first `/` or `#` (so a user may contain
//      `@`, e.g. an e-mail address, but never `/` or `#`);
//   3. `REGISTRY#IMAGE` is enroot's own syntax; otherwise a first path component is a registry only if it
//      contains `.` or `:` (so `localhost/x` is a Docker Hub namespace, as in enroot);
//   4. IMAGE is `[a-z0-9/._-]+` (lowercase only), TAG `[A-Za-z0-9._:-]+`.
import { EnrootError, invalidArgument } from '../util/errors.js'
import type { ImageRef } from './types.js'

export const DOCKER_HUB = 'registry-1.docker.io'
const HUB_ALIASES = new Set(['docker.io', 'index.docker.io', DOCKER_HUB])

const USER = /^[A-Za-z0-9_.!~*'()%;:&=+$,\-<>?@]+$/
const REGISTRY = /^[A-Za-z0-9.\-_:[\]]+$/
const IMAGE = /^[a-z0-9._-]+(\/[a-z0-9._-]+)*$/
const TAG = /^[A-Za-z0-9._:-]+$/
const DIGEST_SUFFIX = /@(sha256:[A-Za-z0-9]+)$/

/** registry without `:port`, the `machine` name used in .credentials */
export const registryHost = (registry: string): string => registry.replace(/:[0-9]+$/, '')

export interface ParseOptions {
  /** content of $ENROOT_CONFIG_PATH/.credentials, for the user inference of spec §3.1 */
  credentialsText?: string
}

/** Parses a docker:// URI; anything not docker:// is `Invalid argument`, a bad reference `Invalid image reference`. */
export function parseImageUri (uri: string, opts: ParseOptions = {}): ImageRef {
  if (!uri.startsWith('docker://')) throw invalidArgument(uri)
  const bad = (): EnrootError => new EnrootError('INVALID', `Invalid image reference: ${uri}`)
  let rest = uri.slice('docker://'.length)

  let digest: string | undefined
  const dm = DIGEST_SUFFIX.exec(rest)
  if (dm !== null) { digest = dm[1]; rest = rest.slice(0, dm.index) }

  let user: string | undefined
  const stop = rest.search(/[/#]/)
  const head = stop === -1 ? rest : rest.slice(0, stop)
  const at = head.lastIndexOf('@')
  if (at !== -1) {
    user = rest.slice(0, at)
    rest = rest.slice(at + 1)
    if (!USER.test(user)) throw bad()
  }

  let registry: string | undefined
  const hash = rest.indexOf('#')
  if (hash !== -1) {
    registry = rest.slice(0, hash)
    rest = rest.slice(hash + 1)
  } else {
    const slash = rest.indexOf('/')
    if (slash !== -1 && /[.:]/.test(rest.slice(0, slash))) {
      registry = rest.slice(0, slash)
      rest = rest.slice(slash + 1)
    }
  }
  if (registry !== undefined && !REGISTRY.test(registry)) throw bad()

  // IMAGE never contains ':', so the first ':' starts the tag
  const colon = rest.indexOf(':')
  const image = colon === -1 ? rest : rest.slice(0, colon)
  const tag = colon === -1 ? 'latest' : rest.slice(colon + 1)
  if (!IMAGE.test(image) || !TAG.test(tag)) throw bad()

  registry = registry === undefined || HUB_ALIASES.has(registry) ? DOCKER_HUB : registry
  const repository = registry === DOCKER_HUB && !image.includes('/') ? `library/${image}` : image
  if (user === undefined && opts.credentialsText !== undefined) user = inferUser(registry, opts.credentialsText)

  const ref: ImageRef = { registry, repository, tag, reference: digest ?? tag }
  if (digest !== undefined) ref.digest = digest
  if (user !== undefined) ref.user = user
  return ref
}

/**
 * The `login` of the first `machine <registry-without-port> login <user>` line (spec §3.1). enroot uses
 * the registry as an awk regex, so its dots match any character; we compare the host literally.
 */
export function inferUser (registry: string, credentialsText: string): string | undefined {
  const host = registryHost(registry)
  for (const line of credentialsText.split('\n')) {
    const f = line.trim().split(/\s+/)
    if (f[0] === 'machine' && f[1] === host && f[2] === 'login' && f[3] !== undefined) return f[3]
  }
  return undefined
}

/** `nvidia+cuda+12.0.sqsh`, `ubuntu+latest.sqsh`, `ubuntu+sha256:….sqsh` (spec §2.4): registry dropped. */
export function defaultImportName (ref: ImageRef): string {
  const image = ref.registry === DOCKER_HUB ? ref.repository.replace(/^library\//, '') : ref.repository
  return `${image.replace(/\//g, '+')}+${ref.digest ?? ref.tag}.sqsh`
}

/** The canonical provenance form, `docker://registry-1.docker.io#library/ubuntu:latest` (spec §4). */
export const canonicalUri = (ref: ImageRef): string => `docker://${ref.registry}#${ref.repository}:${ref.reference}`
