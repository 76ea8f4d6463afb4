// Error paths of the registry client that a real registry cannot produce on demand, so they are
// played by small mock HTTP servers (each test says which behaviour it fakes): 429/503 with Retry-After,
// 500 then success, truncated bodies, wrong bytes, refused and hanging connections, stalled transfers,
// schema 1 manifests, foreign layers, odd auth schemes, expiring tokens, proxies and redirects.
import t from 'tap'

/** the part of a tap Test these helpers use */
interface TeardownT { teardown: (fn: () => void | Promise<void>) => void }
import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http'
import { connect as netConnect, type Socket, type AddressInfo } from 'node:net'
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync, existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { RegistryClient, MANIFEST_ACCEPT } from '../../launcher/src/image/registry.js'
import { HttpClient, retryAfterMs, type HttpSettings } from '../../launcher/src/image/http.js'
import { CredentialStore } from '../../launcher/src/image/credentials.js'
import { parseImageUri } from '../../launcher/src/image/uri.js'
import { freePort } from '../helpers/registry.js'

// First, before any test configures a proxy.
t.test('the client loads only the parts of undici it uses, not its index (a warm import is mostly load time)', async t => {
  const { createRequire } = await import('node:module')
  const loaded = Object.keys(createRequire(import.meta.url).cache)
  const undici = loaded.filter(p => p.includes('/node_modules/undici/'))
  t.ok(undici.some(p => p.endsWith('/undici/lib/dispatcher/agent.js')), 'the agent is loaded')
  t.notOk(undici.some(p => p.endsWith('/node_modules/undici/index.js')), 'not the index')
  t.notOk(undici.some(p => p.includes('/undici/lib/web/')), 'nothing of fetch, WebSocket or the caches')
  t.notOk(undici.some(p => p.includes('proxy-agent')), 'the proxy agents only when a proxy is configured')
})

const work = mkdtempSync(join(tmpdir(), 'enroot-http-test-'))
t.teardown(() => rmSync(work, { recursive: true, force: true }))

const base: HttpSettings = { allowHttp: true, connectTimeout: 5, transferTimeout: 0, retries: 0, maxConnections: 4, backoffMs: 50 }
const sha = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`

type Handler = (req: IncomingMessage, res: ServerResponse, n: number) => void
async function mock (t: TeardownT, handler: Handler): Promise<{ host: string, url: string, hits: IncomingMessage[] }> {
  const hits: IncomingMessage[] = []
  const server: Server = createServer((req, res) => { hits.push(req); handler(req, res, hits.length) })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { server.closeAllConnections(); await new Promise(resolve => server.close(resolve)) })
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`
  return { host, url: `http://${host}`, hits }
}

function client (t: TeardownT, host: string, settings: Partial<HttpSettings> = {}, creds = CredentialStore.empty()): RegistryClient {
  const c = new RegistryClient(parseImageUri(`docker://${host}/app:1`), new HttpClient({ ...base, ...settings }), creds)
  t.teardown(async () => await c.close())
  return c
}

// a tiny valid image served by the mocks
const layer = Buffer.from('layer-bytes-'.repeat(1000))
const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['sh'] } }))
const desc = (b: Buffer, mediaType: string): { mediaType: string, digest: string, size: number } => ({ mediaType, digest: sha(b), size: b.length })
const manifest = Buffer.from(JSON.stringify({
  schemaVersion: 2,
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  config: desc(config, 'application/vnd.oci.image.config.v1+json'),
  layers: [desc(layer, 'application/vnd.oci.image.layer.v1.tar+gzip')]
}))
const layerDesc = desc(layer, 'application/vnd.oci.image.layer.v1.tar+gzip')

function serveImage (req: IncomingMessage, res: ServerResponse): void {
  if (req.url === '/v2/app/manifests/1') {
    res.writeHead(200, { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json', 'Docker-Content-Digest': sha(manifest) })
    res.end(req.method === 'HEAD' ? undefined : manifest)
  } else if (req.url === `/v2/app/blobs/${sha(config)}`) res.end(config)
  else if (req.url === `/v2/app/blobs/${sha(layer)}`) res.end(layer)
  else { res.writeHead(404); res.end() }
}

t.test('Retry-After in seconds and HTTP dates', async t => {
  t.equal(retryAfterMs('2'), 2000)
  t.equal(retryAfterMs(new Date(10_000).toUTCString(), 7_000), 3000)
  t.equal(retryAfterMs(undefined), undefined)
  t.equal(retryAfterMs('soon'), undefined)
})

t.test('429 with Retry-After is waited out and retried (mock: registries rate-limit on their own schedule)', async t => {
  const m = await mock(t, (req, res, n) => {
    if (n === 1) { res.writeHead(429, { 'Retry-After': '1' }); res.end(); return }
    serveImage(req, res)
  })
  const t0 = Date.now()
  const r = await client(t, m.host, { retries: 2 }).resolve('x86_64')
  t.equal(r.manifestDigest, sha(manifest))
  t.ok(Date.now() - t0 >= 950, 'waited for Retry-After, not the 50 ms backoff')
  t.equal(m.hits.length, 2)
  t.equal(m.hits[0]?.headers.accept, MANIFEST_ACCEPT, 'Accept lists the four manifest types')
})

t.test('500 then success is retried with backoff; without retries it fails with one line (mock: a flaky server)', async t => {
  const m = await mock(t, (req, res, n) => {
    if (n % 2 === 1) { res.writeHead(500); res.end('oops'); return }
    serveImage(req, res)
  })
  t.equal((await client(t, m.host, { retries: 1 }).resolve('x86_64')).layers.length, 1)
  await t.rejects(client(t, m.host).resolve('x86_64'), {
    code: 'REGISTRY', message: `URL ${m.url}/v2/app/manifests/1 returned error code: 500 Internal Server Error`
  })
})

t.test('a truncated blob is an error and leaves no file (mock: the connection drops mid-body)', async t => {
  const m = await mock(t, (req, res) => {
    if (req.url?.includes('/blobs/') === true) {
      res.writeHead(200, { 'Content-Length': String(layer.length) })
      res.write(layer.subarray(0, 100), () => res.destroy())
      return
    }
    serveImage(req, res)
  })
  const dest = join(work, 'truncated')
  await t.rejects(client(t, m.host).downloadBlob(layerDesc, dest), { code: 'NETWORK', message: /was interrupted/, hint: /ENROOT_TRANSFER_RETRIES/ })
  t.notOk(existsSync(dest))
  const c = client(t, m.host, { retries: 1 })
  await t.rejects(c.downloadBlob(layerDesc, dest), { code: 'NETWORK' }, 'retried, still truncated')
  t.equal(m.hits.length, 3, 'one try, then one retry of the whole blob')
})

t.test('bytes that do not match the digest are an error and leave no file (mock: a corrupting cache or proxy)', async t => {
  const bad = Buffer.from(layer)
  bad[5] = 0x21
  const m = await mock(t, (_req, res) => { res.end(bad) })
  const dest = join(work, 'corrupt')
  await t.rejects(client(t, m.host).downloadBlob(layerDesc, dest), { code: 'DIGEST', message: `Checksum mismatch: ${layerDesc.digest}` })
  t.notOk(existsSync(dest))
  const longer = await mock(t, (_req, res) => { res.end(Buffer.concat([layer, layer])) })
  await t.rejects(client(t, longer.host).downloadBlob(layerDesc, dest), { code: 'DIGEST' }, 'more bytes than the descriptor says')
  t.notOk(existsSync(dest))
})

t.test('a blob that arrives intact is written, via a redirect to another origin without the token', async t => {
  const storage = await mock(t, (_req, res) => { res.end(layer) })
  const m = await mock(t, (req, res) => {
    res.writeHead(307, { Location: `${storage.url}/bucket/object?sig=1` })
    res.end()
  })
  const dest = join(work, 'redirected')
  await client(t, m.host).downloadBlob(layerDesc, dest)
  t.equal(sha(readFileSync(dest)), layerDesc.digest)
  t.equal(storage.hits[0]?.url, '/bucket/object?sig=1')
})

t.test('registry down: connection refused names the host', async t => {
  const port = await freePort()
  await t.rejects(client(t, `127.0.0.1:${port}`).resolve('x86_64'), {
    code: 'NETWORK', message: `Could not connect to 127.0.0.1:${port}: connection refused`
  })
})

t.test('connect timeout hints at ENROOT_CONNECT_TIMEOUT (mock: a listener whose backlog is full)', async t => {
  // python's listen(0) never accepts; once one connection fills the queue, further SYNs go unanswered
  const py = spawn('python3', ['-c', 'import socket,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(30)'], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { py.kill() })
  const port = await new Promise<number>(resolve => py.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))))
  const filler: Socket = netConnect({ host: '127.0.0.1', port })
  t.teardown(() => { filler.destroy() })
  await new Promise(resolve => filler.once('connect', resolve))
  const t0 = Date.now()
  await t.rejects(client(t, `127.0.0.1:${port}`, { connectTimeout: 1 }).resolve('x86_64'), {
    code: 'NETWORK', message: `Connection to 127.0.0.1:${port} timed out after 1s`, hint: /ENROOT_CONNECT_TIMEOUT/
  })
  t.ok(Date.now() - t0 < 5000)
})

t.test('ENROOT_TRANSFER_TIMEOUT bounds a whole transfer (mock: a server that stalls mid-body)', async t => {
  const m = await mock(t, (_req, res) => {
    res.writeHead(200, { 'Content-Length': String(layer.length) })
    res.write(layer.subarray(0, 10))
  })
  const dest = join(work, 'stalled')
  await t.rejects(client(t, m.host, { transferTimeout: 1 }).downloadBlob(layerDesc, dest), { code: 'NETWORK', hint: /ENROOT_TRANSFER_TIMEOUT/ })
  t.notOk(existsSync(dest))
})

t.test('schema 1 manifests are refused with the fix (mock: distribution 2.8 serves schema 1 only when asked without Accept)', async t => {
  const m = await mock(t, (_req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/vnd.docker.distribution.manifest.v1+prettyjws' })
    res.end(JSON.stringify({ schemaVersion: 1, name: 'app', tag: '1', fsLayers: [] }))
  })
  await t.rejects(client(t, m.host).resolve('x86_64'), {
    code: 'UNSUPPORTED', message: `Image docker://${m.host}#app:1 uses the Docker schema 1 manifest format, which is not supported`, hint: /skopeo copy --format v2s2/
  })
})

t.test('foreign (non-distributable) layers are refused clearly (mock: Windows images)', async t => {
  const foreign = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
    config: desc(config, 'application/vnd.docker.container.image.v1+json'),
    layers: [{ ...desc(layer, 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip'), urls: ['https://mcr.example/layer'] }]
  }))
  const m = await mock(t, (_req, res) => { res.writeHead(200, { 'Content-Type': 'application/vnd.docker.distribution.manifest.v2+json' }); res.end(foreign) })
  await t.rejects(client(t, m.host).resolve('x86_64'), { code: 'UNSUPPORTED', message: /non-distributable \(foreign\) layer sha256:\w+ hosted at https:\/\/mcr\.example\/layer/ })
})

t.test('an unsupported WWW-Authenticate scheme is named (mock: Kerberos-fronted registry)', async t => {
  const m = await mock(t, (_req, res) => { res.writeHead(401, { 'WWW-Authenticate': 'Negotiate' }); res.end() })
  await t.rejects(client(t, m.host).resolve('x86_64'), { code: 'AUTH', message: 'Unsupported authentication method Negotiate' })
})

t.test('an expired token is refreshed once (mock: distribution tolerates 60 s of clock skew, too slow to wait for)', async t => {
  let issued = 0
  let accepted = 'Bearer t1'
  const m = await mock(t, (req, res) => {
    if (req.url?.startsWith('/token') === true) { issued++; res.end(JSON.stringify({ token: `t${issued}` })); return }
    if (req.headers.authorization !== accepted) {
      res.writeHead(401, { 'WWW-Authenticate': `Bearer realm="http://${req.headers.host ?? ''}/token",service="mock",scope="repository:app:pull"` })
      res.end()
      return
    }
    serveImage(req, res)
  })
  const c = client(t, m.host)
  const r = await c.resolve('x86_64')
  accepted = 'Bearer t2' // t1 "expires"
  await c.fetchConfig(r)
  t.equal(issued, 2)
  accepted = 'Bearer never'
  await t.rejects(c.downloadBlob(layerDesc, join(work, 'x')), { code: 'AUTH', message: /returned error code: 401 Unauthorized/ }, 'no endless refresh loop')
  t.equal(issued, 3)
})

t.test('headDigest prints Docker-Content-Digest, and says so when it is missing', async t => {
  const m = await mock(t, serveImage)
  t.equal(await client(t, m.host).headDigest('x86_64'), sha(manifest))
  t.equal(m.hits[0]?.method, 'HEAD')
  t.equal(m.hits[0]?.headers.accept, MANIFEST_ACCEPT, 'Accept on HEAD too')
  const bare = await mock(t, (_req, res) => { res.writeHead(200, { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' }); res.end() })
  await t.rejects(client(t, bare.host).headDigest('x86_64'), { message: `Could not retrieve digest from ${bare.url}/v2/app/manifests/1` })
})

t.test('https_proxy/http_proxy tunnel requests, no_proxy bypasses them (mock: a CONNECT proxy)', async t => {
  const m = await mock(t, serveImage)
  const connects: string[] = []
  const proxy = createServer()
  proxy.on('connect', (req: IncomingMessage, sock: Socket) => {
    connects.push(req.url ?? '')
    const [h, p] = (req.url ?? '').split(':')
    const up = netConnect({ host: h, port: Number(p) }, () => { sock.write('HTTP/1.1 200 Connection Established\r\n\r\n'); up.pipe(sock); sock.pipe(up) })
    up.on('error', () => sock.destroy())
    sock.on('error', () => up.destroy())
  })
  await new Promise<void>(resolve => proxy.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { proxy.closeAllConnections(); await new Promise(resolve => proxy.close(resolve)) })
  const proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`
  await client(t, m.host, { httpProxy: proxyUrl, httpsProxy: proxyUrl }).resolve('x86_64')
  t.same(connects, [m.host])
  await client(t, m.host, { httpProxy: proxyUrl, noProxy: '127.0.0.1' }).resolve('x86_64')
  t.equal(connects.length, 1, 'no_proxy went direct')
})

t.test('ENROOT_MAX_CONNECTIONS caps parallel connections to one host (mock: slow answers force parallel sockets)', async t => {
  const m = await mock(t, (_req, res) => { setTimeout(() => res.end(layer), 100) })
  const c = client(t, m.host, { maxConnections: 2 })
  await Promise.all([0, 1, 2, 3, 4].map(async i => { await c.downloadBlob(layerDesc, join(work, `par-${i}`)) }))
  t.equal(m.hits.length, 5)
  t.equal(new Set(m.hits.map(h => h.socket)).size, 2, 'five downloads shared two connections')
})

