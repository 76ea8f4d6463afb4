// The HTTP layer of the registry client, on undici (spec §3.3 step 10, curl's options translated):
// HTTPS unless ENROOT_ALLOW_HTTP, SSL_CERT_FILE/SSL_CERT_DIR, proxies with no_proxy, ENROOT_CONNECT_TIMEOUT,
// ENROOT_TRANSFER_TIMEOUT (whole request, body included), ENROOT_TRANSFER_RETRIES (exponential backoff,
// Retry-After honoured on 429/503), ENROOT_MAX_CONNECTIONS (pool size per host), redirects followed
// (blob storage; undici drops Authorization when the origin changes).
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { Agent, loadEnvHttpProxyAgent, redirectInterceptor, request, type Dispatcher } from './undici-parts.js'
import { EnrootError } from '../util/errors.js'
import { log } from '../util/log.js'
import { http } from '../util/builtins.js'
import type { Config } from '../config/load.js'

export interface HttpSettings {
  allowHttp: boolean
  /** seconds; 0 = unlimited */
  connectTimeout: number
  /** seconds for a whole request including its body; 0 = unlimited */
  transferTimeout: number
  retries: number
  /** connections per host; 0 = unlimited */
  maxConnections: number
  caFile?: string
  caDir?: string
  httpProxy?: string
  httpsProxy?: string
  noProxy?: string
  /** first backoff delay in ms (doubles each retry); tests shorten it */
  backoffMs?: number
}

/** Reads the network settings from the frozen configuration (modules never read process.env). */
export function httpSettings (cfg: Config): HttpSettings {
  const opt = (k: string): string | undefined => { const v = cfg.get(k); return v === undefined || v === '' ? undefined : v }
  const s: HttpSettings = {
    allowHttp: cfg.flag('ENROOT_ALLOW_HTTP'),
    connectTimeout: cfg.int('ENROOT_CONNECT_TIMEOUT'),
    transferTimeout: cfg.int('ENROOT_TRANSFER_TIMEOUT'),
    retries: cfg.int('ENROOT_TRANSFER_RETRIES'),
    maxConnections: cfg.int('ENROOT_MAX_CONNECTIONS')
  }
  const set = (key: keyof HttpSettings, v: string | undefined): void => { if (v !== undefined) (s as unknown as Record<string, string>)[key] = v }
  set('caFile', opt('SSL_CERT_FILE'))
  set('caDir', opt('SSL_CERT_DIR'))
  set('httpProxy', opt('http_proxy') ?? opt('all_proxy'))
  set('httpsProxy', opt('https_proxy') ?? opt('all_proxy'))
  set('noProxy', opt('no_proxy'))
  return s
}

const PEM = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g

/** CA certificates from SSL_CERT_FILE and every PEM file of SSL_CERT_DIR; undefined = Node's bundle. */
export function loadCaCertificates (s: HttpSettings): string[] | undefined {
  if (s.caFile === undefined && s.caDir === undefined) return undefined
  const certs: string[] = []
  const read = (p: string): void => {
    let text: string
    try { text = readFileSync(p, 'utf8') } catch (err) {
      if (p === s.caFile) throw new EnrootError('CONFIG', `Could not read SSL_CERT_FILE: ${p}`, { cause: err })
      return
    }
    certs.push(...(text.match(PEM) ?? []))
  }
  if (s.caFile !== undefined) read(s.caFile)
  if (s.caDir !== undefined) {
    let names: string[] = []
    try { names = readdirSync(s.caDir) } catch (err) { throw new EnrootError('CONFIG', `Could not read SSL_CERT_DIR: ${s.caDir}`, { cause: err }) }
    for (const n of names.sort()) read(join(s.caDir, n))
  }
  return certs
}

export interface HttpResponse {
  url: string
  status: number
  headers: Record<string, string | string[] | undefined>
  body: Dispatcher.ResponseData['body']
}

export interface RequestOptions {
  method?: 'GET' | 'HEAD'
  headers?: Record<string, string>
}

/** `URL <url> returned error code: <code> <reason>` (enroot's wording, scripts grep it). */
export function statusError (url: string, status: number, hint?: string): EnrootError {
  const code = status === 401 || status === 403 ? 'AUTH' : 'REGISTRY'
  // node:http only for its reason phrases, and only here: loading it costs every registry command about
  // 1.5 ms of start-up (its client, server and agent modules), for a message that most runs never print.
  const msg = `URL ${url} returned error code: ${status} ${http().STATUS_CODES[status] ?? ''}`.trimEnd()
  return new EnrootError(code, msg, hint === undefined ? {} : { hint })
}

/** One line naming the host and the setting to change. */
export function networkError (url: string, err: unknown, s: HttpSettings): EnrootError {
  if (err instanceof EnrootError) return err
  const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException }
  // AbortSignal.timeout() rejects with a DOMException whose numeric `code` is useless: go by name first
  const timedOut = [e?.name, e?.cause?.name].some(n => n === 'TimeoutError' || n === 'AbortError')
  const str = (v: unknown): string | undefined => typeof v === 'string' ? v : undefined
  const code = timedOut ? 'TimeoutError' : str(e?.code) ?? str(e?.cause?.code) ?? e?.name
  let host = url
  try { host = new URL(url).host } catch {}
  const mk = (msg: string, hint: string): EnrootError => new EnrootError('NETWORK', msg, { hint, cause: err })
  switch (code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
      return mk(`Connection to ${host} timed out after ${s.connectTimeout}s`, 'Increase ENROOT_CONNECT_TIMEOUT, or check the network path and proxy settings (https_proxy, no_proxy).')
    case 'ECONNREFUSED':
      return mk(`Could not connect to ${host}: connection refused`, 'Check that the registry is running and reachable, and the proxy settings (https_proxy, no_proxy).')
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return mk(`Could not resolve host: ${host}`, 'Check the registry name, DNS, and the proxy settings (https_proxy, no_proxy).')
    case 'ETIMEDOUT':
    case 'TimeoutError':
    case 'AbortError':
      return mk(`Transfer from ${host} timed out`, `ENROOT_TRANSFER_TIMEOUT=${s.transferTimeout} limits a whole transfer; increase it (0 = unlimited).`)
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return mk(`Transfer from ${host} stalled`, 'Retry, or set ENROOT_TRANSFER_RETRIES to retry automatically.')
    case 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH':
    case 'UND_ERR_SOCKET':
    case 'ECONNRESET':
    case 'EPIPE':
      return mk(`Transfer from ${url} was interrupted`, 'Retry, or set ENROOT_TRANSFER_RETRIES to retry automatically.')
    case 'ERR_SSL_WRONG_VERSION_NUMBER':
    case 'ERR_SSL_PACKET_LENGTH_TOO_LONG':
      return mk(`${host} does not speak HTTPS`, 'If it is a plain-HTTP registry, set ENROOT_ALLOW_HTTP=y (UNSECURE).')
    default:
      if (typeof code === 'string' && /CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO/.test(code)) {
        return mk(`TLS verification of ${host} failed: ${e.message}`, 'Point SSL_CERT_FILE or SSL_CERT_DIR at the CA that signed the registry certificate.')
      }
      return mk(`Request to ${url} failed: ${e?.message ?? String(err)}`, 'Check the network and the proxy settings (https_proxy, no_proxy).')
  }
}

const RETRY_STATUS = new Set([408, 429, 500, 502, 503, 504])
const MAX_WAIT_MS = 300_000

/** Retry-After in ms (seconds or an HTTP date), when the server sent one. */
export function retryAfterMs (value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value
  if (v === undefined || v.trim() === '') return undefined
  if (/^\d+$/.test(v.trim())) return Math.min(Number(v) * 1000, MAX_WAIT_MS)
  const t = Date.parse(v)
  return Number.isNaN(t) ? undefined : Math.min(Math.max(0, t - now), MAX_WAIT_MS)
}

export class HttpClient {
  readonly settings: HttpSettings
  readonly scheme: 'http' | 'https'
  private readonly dispatcher: Dispatcher
  private readonly base: Dispatcher

  constructor (settings: HttpSettings) {
    this.settings = settings
    this.scheme = settings.allowHttp ? 'http' : 'https'
    const ca = loadCaCertificates(settings)
    const connect = { timeout: settings.connectTimeout * 1000, ...(ca === undefined ? {} : { ca }) }
    const pool = { connect, ...(settings.maxConnections > 0 ? { connections: settings.maxConnections } : {}) }
    const proxied = settings.httpProxy !== undefined || settings.httpsProxy !== undefined
    // explicit '' keeps EnvHttpProxyAgent from reading process.env behind the configuration's back
    this.base = proxied
      ? new (loadEnvHttpProxyAgent())({ ...pool, httpProxy: settings.httpProxy ?? '', httpsProxy: settings.httpsProxy ?? '', noProxy: settings.noProxy ?? '', ...(ca === undefined ? {} : { requestTls: { ca } }) })
      : new Agent(pool)
    this.dispatcher = this.base.compose(redirectInterceptor({ maxRedirections: 10 }))
  }

  /** Refuses plain http:// unless ENROOT_ALLOW_HTTP (also for token realms the registry names). */
  checkScheme (url: string): void {
    if (url.startsWith('http://') && !this.settings.allowHttp) {
      throw new EnrootError('NETWORK', `Refusing plain HTTP: ${url}`, { hint: 'Set ENROOT_ALLOW_HTTP=y to allow unencrypted registries (UNSECURE).' })
    }
  }

  /** One request; network errors and 408/429/5xx are retried up to ENROOT_TRANSFER_RETRIES times. */
  async request (url: string, opts: RequestOptions = {}): Promise<HttpResponse> {
    this.checkScheme(url)
    return await this.retrying(url, async () => {
      const signal = this.settings.transferTimeout > 0 ? AbortSignal.timeout(this.settings.transferTimeout * 1000) : undefined
      log.debug(`${opts.method ?? 'GET'} ${url}`)
      const res = await request(url, {
        dispatcher: this.dispatcher,
        method: opts.method ?? 'GET',
        headers: opts.headers ?? {},
        ...(signal === undefined ? {} : { signal })
      })
      return { url, status: res.statusCode, headers: res.headers, body: res.body }
    }, (res) => RETRY_STATUS.has(res.status))
  }

  /**
   * Runs `fn` until it succeeds, up to `retries` more times, waiting 1 s, 2 s, 4 s... (or what Retry-After
   * says). `again(result)` marks a result that is worth another try (its body is discarded).
   */
  async retrying<T> (url: string, fn: (attempt: number) => Promise<T>, again?: (r: T) => boolean): Promise<T> {
    const { retries } = this.settings
    for (let attempt = 0; ; attempt++) {
      let wait = (this.settings.backoffMs ?? 1000) * 2 ** attempt
      try {
        const r = await fn(attempt)
        if (again === undefined || !again(r) || attempt >= retries) return r
        const res = r as unknown as HttpResponse
        wait = retryAfterMs(res.headers?.['retry-after']) ?? wait
        await res.body?.dump().catch(() => {})
        log.warn(`URL ${url} returned error code: ${res.status}, retrying in ${Math.ceil(wait / 1000)}s (${attempt + 1}/${retries})`)
      } catch (err) {
        const e = networkError(url, err, this.settings)
        if (attempt >= retries || e.code !== 'NETWORK') throw e
        log.warn(`${e.message}, retrying in ${Math.ceil(wait / 1000)}s (${attempt + 1}/${retries})`)
      }
      await new Promise(resolve => setTimeout(resolve, Math.min(wait, MAX_WAIT_MS)))
    }
  }

  async close (): Promise<void> { await this.base.close() }
}

/** Reads a small body (manifests, configs, tokens) with a size cap, so a hostile server cannot fill memory. */
export async function readBody (res: HttpResponse, limit: number, s: HttpSettings): Promise<Buffer> {
  const chunks: Buffer[] = []
  let n = 0
  try {
    for await (const c of res.body) {
      n += (c as Buffer).length
      if (n > limit) {
        res.body.destroy()
        throw new EnrootError('REGISTRY', `Response from ${res.url} is larger than ${limit} bytes`)
      }
      chunks.push(c as Buffer)
    }
  } catch (err) { throw networkError(res.url, err, s) }
  return Buffer.concat(chunks)
}

export const header = (res: HttpResponse, name: string): string | undefined => {
  const v = res.headers[name.toLowerCase()]
  return Array.isArray(v) ? v[0] : v
}
