// The suite's real registries: Debian's docker-registry (distribution 2.8) on loopback, plain HTTP.
//
// API:
//   registryAvailable()            -> { ok, why } (docker-registry, htpasswd, skopeo, openssl present)
//   await freePort()               -> a free TCP port on 127.0.0.1 (bind 0, close)
//   const reg = await startRegistry({ dir, auth })   auth: { kind: 'none' }                       (anonymous)
//                                                         { kind: 'basic', user, password }        (htpasswd, bcrypt)
//                                                         { kind: 'token', issuer: TokenIssuer }   (Bearer, token-issuer.ts)
//   reg.url ('http://127.0.0.1:PORT'), reg.host ('127.0.0.1:PORT'), reg.dir (storage root)
//   reg.pushCreds                  -> 'user:password' for skopeo --dest-creds, when auth needs it
//   reg.accessLog()                -> [{ method, path, status }] parsed from the registry's access log
//   reg.count(method, pathPart)    -> how many requests of that method had pathPart in their path (e.g. blob GETs)
//   await reg.stop()
// Clients need ENROOT_ALLOW_HTTP=y. Start takes ~0.2 s; stop kills the process and removes nothing
// (the caller's dir is the caller's).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdirSync, writeFileSync, existsSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { TokenIssuer } from './token-issuer.js'

export const REGISTRY_BIN = '/usr/bin/docker-registry'

export type RegistryAuth =
  | { kind: 'none' }
  | { kind: 'basic', user: string, password: string }
  | { kind: 'token', issuer: TokenIssuer, user?: string, password?: string }

export interface AccessEntry { method: string, path: string, status: number }

export interface TestRegistry {
  url: string
  host: string
  dir: string
  pushCreds?: string
  accessLog: () => AccessEntry[]
  count: (method: string, pathPart: string) => number
  stop: () => Promise<void>
}

const has = (bin: string): boolean => spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0

export function registryAvailable (): { ok: boolean, why: string } {
  if (!existsSync(REGISTRY_BIN)) return { ok: false, why: `${REGISTRY_BIN} missing (apt-get install docker-registry)` }
  for (const b of ['skopeo', 'htpasswd', 'openssl', 'zstd', 'tar']) if (!has(b)) return { ok: false, why: `${b} missing (scripts/setup.sh installs it)` }
  return { ok: true, why: '' }
}

/**
 * docker-registry's config.yml for a loopback registry (the suite's and the demo's, scripts/demo.ts):
 * plain HTTP on 127.0.0.1:port, filesystem storage, deletes allowed; the access log (blob GETs counted by
 * the tests) only when asked. Ends with a newline, ready for an auth section.
 */
export function registryConfig (o: { storage: string, port: number, secret: string, accessLog?: boolean }): string {
  return `version: 0.1
log:
  level: warn
  formatter: text
${o.accessLog === true ? '  accesslog:\n    disabled: false\n' : ''}storage:
  filesystem:
    rootdirectory: ${o.storage}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:${o.port}
  secret: ${o.secret}
`
}

export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = createServer()
    s.on('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as AddressInfo).port
      s.close(() => resolve(port))
    })
  })
}

function authSection (auth: RegistryAuth, dir: string): string {
  switch (auth.kind) {
    case 'none': return ''
    case 'basic': {
      const file = join(dir, 'htpasswd')
      // distribution accepts only bcrypt entries
      const r = spawnSync('htpasswd', ['-Bbc', file, auth.user, auth.password], { stdio: 'ignore' })
      if (r.status !== 0) throw new Error('htpasswd failed')
      return `auth:\n  htpasswd:\n    realm: enroot-test\n    path: ${file}\n`
    }
    case 'token':
      return `auth:\n  token:\n    realm: ${auth.issuer.realm}\n    service: ${auth.issuer.service}\n    issuer: ${auth.issuer.issuer}\n    rootcertbundle: ${auth.issuer.certPath}\n`
  }
}

const ACCESS = /"(GET|HEAD|PUT|POST|PATCH|DELETE) (\S+) HTTP\/[0-9.]+" (\d{3})/

export async function startRegistry (opts: { dir: string, auth?: RegistryAuth }): Promise<TestRegistry> {
  const auth = opts.auth ?? { kind: 'none' }
  const storage = join(opts.dir, 'storage')
  mkdirSync(storage, { recursive: true })
  const port = await freePort()
  const config = join(opts.dir, 'config.yml')
  writeFileSync(config, registryConfig({ storage, port, secret: 'enroot-test-secret', accessLog: true }) + authSection(auth, opts.dir))

  const lines: string[] = []
  const child: ChildProcess = spawn(REGISTRY_BIN, ['serve', config], { stdio: ['ignore', 'pipe', 'pipe'] })
  const collect = (buf: Buffer): void => { lines.push(...buf.toString().split('\n').filter(Boolean)) }
  child.stdout?.on('data', collect)
  child.stderr?.on('data', collect)
  let exited = false
  child.on('exit', () => { exited = true })

  const url = `http://127.0.0.1:${port}`
  // ready when /v2/ answers at all (200 anonymous, 401 with auth)
  for (let i = 0; ; i++) {
    if (exited) throw new Error(`docker-registry exited at start:\n${lines.join('\n')}`)
    try {
      const r = await fetch(`${url}/v2/`)
      await r.arrayBuffer()
      if (r.status === 200 || r.status === 401) break
    } catch {}
    if (i > 100) { child.kill('SIGKILL'); throw new Error(`docker-registry did not start:\n${lines.join('\n')}`) }
    await sleep(50)
  }

  const accessLog = (): AccessEntry[] => lines.flatMap(l => {
    const m = ACCESS.exec(l)
    return m === null ? [] : [{ method: m[1] as string, path: m[2] as string, status: Number(m[3]) }]
  })
  const creds = auth.kind === 'basic'
    ? `${auth.user}:${auth.password}`
    : auth.kind === 'token' && auth.user !== undefined ? `${auth.user}:${auth.password ?? ''}` : undefined
  return {
    url,
    host: `127.0.0.1:${port}`,
    dir: opts.dir,
    ...(creds === undefined ? {} : { pushCreds: creds }),
    accessLog,
    count: (method, part) => accessLog().filter(e => e.method === method && e.path.includes(part)).length,
    stop: async () => {
      if (exited) return
      const done = new Promise<void>(resolve => child.once('exit', () => resolve()))
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000)
      await done
      clearTimeout(timer)
    }
  }
}
