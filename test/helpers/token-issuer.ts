// A Docker token server for the suite's Bearer-auth registry (distribution's `auth.token` mode).
//
// API:
//   const issuer = await startTokenIssuer({ dir, users: { alice: 'secret' }, anonymousPull: false, https: false, host: '127.0.0.1' })
//   issuer.realm        -> 'http://<host>:<port>/token' (goes into the registry's auth.token.realm)
//   issuer.service, issuer.issuer, issuer.certPath (rootcertbundle; also a CA file for SSL_CERT_FILE when https)
//   issuer.requests()   -> number of token requests served so far (tests assert token reuse)
//   issuer.log          -> [{ user, scopes, status }] per request
//   await issuer.stop()
//
// It checks Basic credentials (wrong ones → 401; none → anonymous, pull only when anonymousPull) and
// answers {token, access_token, expires_in, issued_at}. Tokens are RS256 JWTs with the signing certificate
// in the header's x5c, claims iss, sub, aud=service, exp, nbf, iat, jti, access[{type,name,actions}].
// The key and the self-signed certificate (SAN 127.0.0.1, 127.0.0.2, localhost) are made with openssl per issuer.
import { createServer as createHttp, type IncomingMessage, type ServerResponse, type Server } from 'node:http'
import { createServer as createHttps } from 'node:https'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createPrivateKey, randomUUID, sign } from 'node:crypto'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'

export interface TokenIssuerOptions {
  /** directory for key.pem and cert.pem */
  dir: string
  users?: Record<string, string>
  /** grant pull to requests without credentials */
  anonymousPull?: boolean
  https?: boolean
  /** loopback address to listen on (127.0.0.2 gives the realm a host name other than the registry's) */
  host?: string
  service?: string
  /** token lifetime in seconds */
  ttl?: number
}

export interface TokenRequestRecord { user: string | undefined, scopes: string[], status: number }

export interface TokenIssuer {
  realm: string
  service: string
  issuer: string
  certPath: string
  keyPath: string
  log: TokenRequestRecord[]
  requests: () => number
  stop: () => Promise<void>
}

const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url')

/** Makes an RSA key and a self-signed certificate usable both for signing and as a TLS server cert. */
export function makeKeyPair (dir: string, cn = 'enroot-test-token-issuer'): { keyPath: string, certPath: string } {
  const keyPath = join(dir, 'key.pem')
  const certPath = join(dir, 'cert.pem')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyPath, '-out', certPath,
    '-days', '2', '-subj', `/CN=${cn}`, '-addext', 'subjectAltName=IP:127.0.0.1,IP:127.0.0.2,DNS:localhost'], { stdio: 'ignore' })
  return { keyPath, certPath }
}

/** `repository:team/app:pull,push` → {type, name, actions}; names may not contain ':' but we split safely. */
function parseScope (scope: string): { type: string, name: string, actions: string[] } | undefined {
  const first = scope.indexOf(':')
  const last = scope.lastIndexOf(':')
  if (first === -1 || last === first) return undefined
  return { type: scope.slice(0, first), name: scope.slice(first + 1, last), actions: scope.slice(last + 1).split(',').filter(Boolean) }
}

export async function startTokenIssuer (opts: TokenIssuerOptions): Promise<TokenIssuer> {
  const { keyPath, certPath } = makeKeyPair(opts.dir)
  const key = createPrivateKey(readFileSync(keyPath))
  const certPem = readFileSync(certPath, 'utf8')
  const x5c = certPem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '')
  const service = opts.service ?? 'enroot-test-registry'
  const issuer = 'enroot-test-issuer'
  const ttl = opts.ttl ?? 300
  const log: TokenRequestRecord[] = []

  const jwt = (sub: string, access: unknown[]): string => {
    const now = Math.floor(Date.now() / 1000)
    const head = b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', x5c: [x5c] }))
    const body = b64url(JSON.stringify({ iss: issuer, sub, aud: service, exp: now + ttl, nbf: now - 10, iat: now, jti: randomUUID(), access }))
    return `${head}.${body}.${b64url(sign('sha256', Buffer.from(`${head}.${body}`), key))}`
  }

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://x')
    const scopes = url.searchParams.getAll('scope')
    const deny = (user: string | undefined): void => {
      log.push({ user, scopes, status: 401 })
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="token"', 'Content-Type': 'application/json' })
      res.end('{"errors":[{"code":"UNAUTHORIZED","message":"invalid credentials"}]}')
    }
    let user: string | undefined
    const auth = req.headers.authorization
    if (auth !== undefined) {
      const m = /^Basic\s+(.+)$/i.exec(auth)
      const dec = m === null ? '' : Buffer.from(m[1] as string, 'base64').toString('utf8')
      const colon = dec.indexOf(':')
      user = colon === -1 ? dec : dec.slice(0, colon)
      const pass = colon === -1 ? '' : dec.slice(colon + 1)
      if (opts.users?.[user] === undefined || opts.users[user] !== pass) { deny(user); return }
    } else if (opts.anonymousPull !== true) { deny(undefined); return }
    const access = scopes.map(parseScope).filter(s => s !== undefined).map(s => ({
      type: s.type, name: s.name, actions: user === undefined ? s.actions.filter(a => a === 'pull') : s.actions
    }))
    const token = jwt(user ?? '', access)
    log.push({ user, scopes, status: 200 })
    res.writeHead(200, { 'Content-Type': 'application/json' })
    res.end(JSON.stringify({ token, access_token: token, expires_in: ttl, issued_at: new Date().toISOString() }))
  }

  const server: Server = opts.https === true
    ? createHttps({ key: readFileSync(keyPath), cert: certPem }, handler)
    : createHttp(handler)
  const host = opts.host ?? '127.0.0.1'
  await new Promise<void>(resolve => server.listen(0, host, resolve))
  const port = (server.address() as AddressInfo).port
  return {
    realm: `${opts.https === true ? 'https' : 'http'}://${host}:${port}/token`,
    service,
    issuer,
    certPath,
    keyPath,
    log,
    requests: () => log.length,
    stop: async () => { server.closeAllConnections(); await new Promise<void>(resolve => server.close(() => resolve())) }
  }
}
