// Basic and Bearer authentication against the real registry (htpasswd and token modes) and the suite's
// token issuer; credentials come from a real .credentials file.
import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { requireFeature } from '../helpers/env.js'
import { registryAvailable, startRegistry, type TestRegistry } from '../helpers/registry.js'
import { startTokenIssuer, type TokenIssuer } from '../helpers/token-issuer.js'
import { busyboxImage, pushLayout, writeOciLayout } from '../helpers/oci-image.js'
import { RegistryClient } from '../../launcher/src/image/registry.js'
import { HttpClient, type HttpSettings } from '../../launcher/src/image/http.js'
import { CredentialStore } from '../../launcher/src/image/credentials.js'
import { parseImageUri } from '../../launcher/src/image/uri.js'
import { parseChallenge } from '../../launcher/src/image/auth.js'

type T = Parameters<typeof requireFeature>[0]
const avail = registryAvailable()
// under ENROOT_TEST_MUST_WORK=1 a missing registry is a failure (requireFeature), otherwise a skip
if (requireFeature(t as unknown as T, 'registry', avail.ok, avail.why)) await main()

async function main (): Promise<void> {

  const work = mkdtempSync(join(tmpdir(), 'enroot-auth-test-'))
  t.teardown(() => rmSync(work, { recursive: true, force: true }))
  const sub = (n: string): string => { const d = join(work, n); mkdirSync(d, { recursive: true }); return d }

  const basicReg = await startRegistry({ dir: sub('basic'), auth: { kind: 'basic', user: 'alice', password: 'secret' } })
  t.teardown(basicReg.stop)
  // the realm lives on 127.0.0.2 so that its .credentials entry differs from the registry's (127.0.0.1)
  const issuer = await startTokenIssuer({ dir: sub('issuer'), users: { alice: 'secret' }, host: '127.0.0.2' })
  t.teardown(issuer.stop)
  const tokenReg = await startRegistry({ dir: sub('token'), auth: { kind: 'token', issuer, user: 'alice', password: 'secret' } })
  t.teardown(tokenReg.stop)
  const tlsIssuer = await startTokenIssuer({ dir: sub('tls-issuer'), users: { alice: 'secret' }, https: true })
  t.teardown(tlsIssuer.stop)
  const tlsReg = await startRegistry({ dir: sub('tls'), auth: { kind: 'token', issuer: tlsIssuer, user: 'alice', password: 'secret' } })
  t.teardown(tlsReg.stop)

  const layout = writeOciLayout(sub('bb'), 'v1', busyboxImage())
  for (const r of [basicReg, tokenReg, tlsReg]) await pushLayout(layout, r, 'team/bb:v1')

  const base: HttpSettings = { allowHttp: true, connectTimeout: 5, transferTimeout: 0, retries: 0, maxConnections: 4 }

  /** A client as `enroot import` makes one: user inferred from .credentials, entries matched per host. */
  function client (reg: TestRegistry, credentials: string, settings: HttpSettings = base, user = ''): RegistryClient {
    const dir = mkdtempSync(join(work, 'cfg-'))
    writeFileSync(join(dir, '.credentials'), credentials)
    const ref = parseImageUri(`docker://${user}${reg.host}/team/bb:v1`, { credentialsText: credentials })
    const c = new RegistryClient(ref, new HttpClient(settings), new CredentialStore(dir, { PATH: '/usr/bin:/bin' }))
    t.teardown(async () => await c.close())
    return c
  }

  /** What an import does over the network: resolve, config, every layer. */
  async function pull (c: RegistryClient): Promise<void> {
    const r = await c.resolve('x86_64')
    await c.fetchConfig(r)
    for (const [i, l] of r.layers.entries()) await c.downloadBlob(l, join(work, `blob-${process.hrtime.bigint()}-${i}`))
  }

  t.test('parses WWW-Authenticate challenges', async t => {
    t.same(parseChallenge('Bearer realm="https://auth.io/token",service="reg.io",scope="repository:a/b:pull"'),
      { scheme: 'Bearer', params: { realm: 'https://auth.io/token', service: 'reg.io', scope: 'repository:a/b:pull' } })
    t.same(parseChallenge('Basic realm=registry'), { scheme: 'Basic', params: { realm: 'registry' } })
  })

  t.test('Basic: the right credentials pull the image', async t => {
    await pull(client(basicReg, 'machine 127.0.0.1 login alice password secret\n'))
    t.pass()
  })

  t.test('Basic: a wrong password gives one line naming the URL and the 401', async t => {
    await t.rejects(pull(client(basicReg, 'machine 127.0.0.1 login alice password wrong\n')), {
      code: 'AUTH', message: `URL ${basicReg.url}/v2/team/bb/manifests/v1 returned error code: 401 Unauthorized`, hint: /127\.0\.0\.1.*\.credentials/
    })
  })

  t.test('Basic: no credentials says which entry to add', async t => {
    await t.rejects(pull(client(basicReg, '')), {
      code: 'AUTH', message: /^Authentication required by 127\.0\.0\.1:\d+ .* and no credentials for 127\.0\.0\.1$/, hint: /machine 127\.0\.0\.1 login/
    })
  })

  t.test('Bearer: one token per import, reused by every request', async t => {
    const before = issuer.requests()
    const c = client(tokenReg, 'machine 127.0.0.1 login alice password not-used-for-the-realm\nmachine 127.0.0.2 login alice password secret\n')
    await pull(c)
    t.equal(issuer.requests() - before, 1, 'the issuer saw one request')
    t.equal(c.auth.tokenRequests, 1)
    t.equal(issuer.log.at(-1)?.user, 'alice', 'the realm got the realm host\'s entry')
    t.same(issuer.log.at(-1)?.scopes, ['repository:team/bb:pull'])
  })

  t.test('Bearer: wrong or missing credentials name the realm that refused', async t => {
    await t.rejects(pull(client(tokenReg, 'machine 127.0.0.2 login alice password wrong\n')), {
      code: 'AUTH', message: new RegExp(`^Authentication failed at ${issuer.realm}: URL ${issuer.realm}\\?.* returned error code: 401 Unauthorized$`)
    })
    await t.rejects(pull(client(tokenReg, '')), {
      code: 'AUTH', message: new RegExp(`^Authentication failed at ${issuer.realm}:`), hint: /machine 127\.0\.0\.2 login/
    })
  })

  t.test('Bearer over HTTPS: SSL_CERT_FILE makes the realm trusted, without it TLS fails with a hint', async t => {
    const creds = 'machine 127.0.0.1 login alice password secret\n'
    await pull(client(tlsReg, creds, { ...base, caFile: tlsIssuer.certPath }))
    const certDir = sub('certs')
    writeFileSync(join(certDir, 'issuer.pem'), (await import('node:fs')).readFileSync(tlsIssuer.certPath))
    await pull(client(tlsReg, creds, { ...base, caDir: certDir }))
    await t.rejects(pull(client(tlsReg, creds)), { code: 'NETWORK', message: /^TLS verification of 127\.0\.0\.1:\d+ failed/, hint: /SSL_CERT_FILE/ })
  })

  t.test('a plain-HTTP registry is refused without ENROOT_ALLOW_HTTP', async t => {
    const c = client(basicReg, '', { ...base, allowHttp: false })
    await t.rejects(c.resolve('x86_64'), { code: 'NETWORK', message: `${basicReg.host} does not speak HTTPS`, hint: /ENROOT_ALLOW_HTTP=y/ })
  })
}
