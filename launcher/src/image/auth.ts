// Registry authentication (spec §3.3): anonymous, Basic, or Bearer tokens from the realm that the
// WWW-Authenticate challenge names. Differences from enroot, on purpose:
// - no pre-flight HEAD without Accept (enroot#277): the first real request's 401 carries the challenge;
// - a token lives in memory only, per registry+scope, and is reused by every request of one import
//   (enroot writes it to a PID-scoped file); a 401 with a cached token refreshes it once;
// - the realm host gets its own .credentials entry (see credentials.ts), never the registry's by accident.
import { EnrootError } from '../util/errors.js'
import { log } from '../util/log.js'
import { registryHost } from './uri.js'
import { header, readBody, statusError, type HttpClient, type HttpResponse } from './http.js'
import type { CredentialStore, Credential } from './credentials.js'
import type { ImageRef } from './types.js'

export interface Challenge { scheme: string, params: Record<string, string> }

/** Parses `Bearer realm="…",service="…",scope="…"` (quoted or token values, any order). */
export function parseChallenge (value: string): Challenge {
  const m = /^\s*([A-Za-z][A-Za-z0-9._~+/-]*)\s*(.*)$/.exec(value)
  if (m === null) return { scheme: '', params: {} }
  const params: Record<string, string> = {}
  const re = /([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?\s*/g
  for (const p of (m[2] as string).matchAll(re)) {
    params[(p[1] as string).toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : (p[3] ?? '')
  }
  return { scheme: m[1] as string, params }
}

const basic = (c: Credential): string => `Basic ${Buffer.from(`${c.login}:${c.password}`).toString('base64')}`

export class Authenticator {
  private readonly http: HttpClient
  private readonly creds: CredentialStore
  private readonly ref: ImageRef
  /** Authorization header per registry+scope; `current` is the one requests send first */
  private readonly tokens = new Map<string, string>()
  private current: string | undefined
  /** how many times a token was fetched from a realm (tests assert reuse) */
  tokenRequests = 0

  constructor (http: HttpClient, creds: CredentialStore, ref: ImageRef) {
    this.http = http
    this.creds = creds
    this.ref = ref
  }

  /** The Authorization header to send now, if any. */
  authorization (): string | undefined { return this.current }

  /**
   * Answers a 401: works out a new Authorization header from its challenge. `sent` is the header the
   * failed request carried; a fresh header equal to it means the credentials are wrong (no loop).
   */
  async answer (res: HttpResponse, sent: string | undefined): Promise<string> {
    const www = header(res, 'www-authenticate')
    if (www === undefined) throw statusError(res.url, res.status)
    const ch = parseChallenge(www)
    const scheme = ch.scheme.toLowerCase()
    const key = `${this.ref.registry} ${ch.params.scope ?? ''}`
    let value: string
    if (scheme === 'basic') {
      const c = this.credentialFor(registryHost(this.ref.registry))
      if (c === undefined) throw this.noCredentials(res.url)
      value = basic(c)
    } else if (scheme === 'bearer') {
      const cached = this.tokens.get(key)
      value = cached !== undefined && cached !== sent ? cached : await this.fetchToken(ch, res.url)
    } else {
      throw new EnrootError('AUTH', `Unsupported authentication method ${ch.scheme}`)
    }
    if (value === sent) throw this.rejected(res)
    this.tokens.set(key, value)
    this.current = value
    return value
  }

  /** The error for a request that was refused even with fresh credentials. */
  rejected (res: HttpResponse): EnrootError {
    const who = this.ref.user === undefined ? 'anonymous access' : `user ${this.ref.user}`
    return statusError(res.url, res.status, `The registry refused ${who}; check the entry for ${registryHost(this.ref.registry)} in ${this.creds.path}.`)
  }

  private credentialFor (host: string): Credential | undefined {
    if (this.ref.user === undefined && this.creds.text === '') return undefined
    const c = this.creds.lookup(host, this.ref.user)
    if (c !== undefined) log.info(`Using credentials from file: ${this.creds.path}`)
    return c
  }

  private noCredentials (url: string): EnrootError {
    const host = registryHost(this.ref.registry)
    return new EnrootError('AUTH', `Authentication required by ${this.ref.registry} (${url}) and no credentials for ${host}`, {
      hint: `Add "machine ${host} login <user> password <password>" to ${this.creds.path}.`
    })
  }

  private async fetchToken (ch: Challenge, url: string): Promise<string> {
    const realm = ch.params.realm ?? ''
    if (realm === '') throw new EnrootError('AUTH', `Could not parse authentication realm from ${url}`)
    let realmUrl: URL
    try { realmUrl = new URL(realm) } catch { throw new EnrootError('AUTH', `Could not parse authentication realm from ${url}`) }
    for (const [k, v] of Object.entries(ch.params)) if (k !== 'realm') realmUrl.searchParams.append(k, v)
    const c = this.credentialFor(realmUrl.hostname)
    log.info(`Authenticating with user: ${c?.login ?? this.ref.user ?? '<anonymous>'}`)
    this.tokenRequests++
    const res = await this.http.request(realmUrl.toString(), { headers: c === undefined ? {} : { Authorization: basic(c) } })
    if (res.status >= 400) {
      await res.body.dump().catch(() => {})
      const e = statusError(realmUrl.toString(), res.status)
      throw new EnrootError('AUTH', `Authentication failed at ${realm}: ${e.message}`, {
        hint: c === undefined
          ? `Add "machine ${realmUrl.hostname} login <user> password <password>" to ${this.creds.path}.`
          : `Check the entry for ${realmUrl.hostname} in ${this.creds.path}.`
      })
    }
    const body = await readBody(res, 1 << 20, this.http.settings)
    let token: unknown
    try {
      const j = JSON.parse(body.toString('utf8')) as { token?: unknown, access_token?: unknown }
      token = j.token ?? j.access_token
    } catch {}
    if (typeof token !== 'string' || token === '') throw new EnrootError('AUTH', `Authentication failed at ${realm}: no token in the reply`)
    log.info('Authentication succeeded')
    return `Bearer ${token}`
  }
}
