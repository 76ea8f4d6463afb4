// RegistryClient against the real registry (docker-registry 2.8 on loopback, anonymous).
import t from 'tap'
import { mkdtempSync, rmSync, readFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { requireFeature } from '../helpers/env.js'
import { registryAvailable, startRegistry, type TestRegistry } from '../helpers/registry.js'
import { busyboxImage, pushLayout, skopeoInspect, sha256, tarDirectory, writeOciLayout, type Layout } from '../helpers/oci-image.js'
import { RegistryClient } from '../../launcher/src/image/registry.js'
import { HttpClient, type HttpSettings } from '../../launcher/src/image/http.js'
import { CredentialStore } from '../../launcher/src/image/credentials.js'
import { parseImageUri } from '../../launcher/src/image/uri.js'

type T = Parameters<typeof requireFeature>[0]
const avail = registryAvailable()
// under ENROOT_TEST_MUST_WORK=1 a missing registry is a failure (requireFeature), otherwise a skip
if (requireFeature(t as unknown as T, 'registry', avail.ok, avail.why)) await main()

async function main (): Promise<void> {

  const work = mkdtempSync(join(tmpdir(), 'enroot-registry-test-'))
  t.teardown(() => rmSync(work, { recursive: true, force: true }))
  const reg: TestRegistry = await startRegistry({ dir: join(work, 'registry') })
  t.teardown(reg.stop)

  const settings: HttpSettings = { allowHttp: true, connectTimeout: 5, transferTimeout: 0, retries: 0, maxConnections: 4 }
  function client (uri: string): RegistryClient {
    const c = new RegistryClient(parseImageUri(`docker://${reg.host}/${uri}`), new HttpClient(settings), CredentialStore.empty())
    t.teardown(async () => await c.close())
    return c
  }

  // fixtures: busybox as Docker schema 2 and as OCI; a two-arch OCI index with an attestation entry first
  const bb = writeOciLayout(join(work, 'bb'), 'v1', busyboxImage())
  await pushLayout(bb, reg, 'bb:v2s2', { format: 'v2s2' })
  await pushLayout(bb, reg, 'bb:oci')
  const small = tarDirectory(join(work, 'bb', 'blobs'))
  const multi: Layout = writeOciLayout(join(work, 'multi'), 'v1', [
    busyboxImage({ architecture: 'amd64' }),
    { layers: [{ tar: small, compression: 'zstd' }, { tar: small, compression: 'none' }], architecture: 'arm64', variant: 'v8', config: { Cmd: ['arm'] } }
  ], { attestation: true })
  await pushLayout(multi, reg, 'multi:1', { all: true })

  t.test('resolves a Docker schema 2 image; its digest is what skopeo reports', async t => {
    const r = await client('bb:v2s2').resolve('x86_64')
    const info = JSON.parse(await skopeoInspect(reg, 'bb:v2s2')) as { Digest: string }
    t.equal(r.manifestMediaType, 'application/vnd.docker.distribution.manifest.v2+json')
    t.equal(r.manifestDigest, info.Digest)
    t.equal(r.layers.length, 1)
    t.equal(r.layers[0]?.mediaType, 'application/vnd.docker.image.rootfs.diff.tar.gzip')
    t.equal(r.ref.repository, 'bb')
  })

  t.test('resolves an OCI manifest byte for byte as built', async t => {
    const r = await client('bb:oci').resolve('amd64')
    const m = bb.manifests[0]
    t.equal(r.manifestMediaType, 'application/vnd.oci.image.manifest.v1+json')
    t.equal(r.manifestDigest, m?.digest)
    t.same(r.config, m?.config)
    t.same(r.layers, m?.layers)
  })

  t.test('an OCI index gives the manifest of the requested architecture, both spellings', async t => {
    for (const arch of ['x86_64', 'amd64', 'linux/amd64']) {
      t.equal((await client('multi:1').resolve(arch)).manifestDigest, multi.manifests[0]?.digest, arch)
    }
    for (const arch of ['aarch64', 'arm64', 'arm64/v8']) {
      const r = await client('multi:1').resolve(arch)
      t.equal(r.manifestDigest, multi.manifests[1]?.digest, arch)
      t.same(r.layers.map(l => l.mediaType), ['application/vnd.oci.image.layer.v1.tar+zstd', 'application/vnd.oci.image.layer.v1.tar'])
    }
  })

  t.test('attestation entries are skipped, and a missing platform lists what exists', async t => {
    const raw = JSON.parse(await skopeoInspect(reg, 'multi:1', true)) as { manifests: Array<{ annotations?: Record<string, string> }> }
    t.equal(raw.manifests[0]?.annotations?.['vnd.docker.reference.type'], 'attestation-manifest', 'the fixture lists the attestation first')
    t.equal((await client('multi:1').resolve('x86_64')).manifestDigest, multi.manifests[0]?.digest)
    await t.rejects(client('multi:1').resolve('ppc64le'), {
      code: 'IMAGE',
      message: `Image docker://${reg.host}#multi:1 has no manifest for linux/ppc64le (available: linux/amd64, linux/arm64/v8)`
    })
    await t.rejects(client('multi:1').resolve('sparc'), { message: 'Unsupported architecture: sparc' })
  })

  t.test('headDigest is the per-architecture manifest digest, not the index', async t => {
    t.equal(await client('multi:1').headDigest('aarch64'), multi.manifests[1]?.digest)
    t.equal(await client('multi:1').headDigest('x86_64'), multi.manifests[0]?.digest)
    t.equal(await client('bb:oci').headDigest('x86_64'), bb.manifests[0]?.digest)
    t.not(await client('multi:1').headDigest('x86_64'), multi.top.digest)
  })

  t.test('a digest-pinned reference resolves to that manifest', async t => {
    const d = multi.manifests[1]?.digest as string
    const r = await client(`multi@${d}`).resolve('aarch64')
    t.equal(r.manifestDigest, d)
    t.equal((await client(`multi@${multi.top.digest}`).resolve('x86_64')).manifestDigest, multi.manifests[0]?.digest, 'pinned index')
  })

  t.test('fetchConfig returns the verified image configuration', async t => {
    const c = client('bb:oci')
    const cfg = await c.fetchConfig(await c.resolve('x86_64'))
    t.same(cfg.config?.Cmd, ['sh'])
    t.match(cfg.config?.Env, [/^PATH=/])
    t.equal(cfg.architecture, 'amd64')
  })

  t.test('downloadBlob streams a layer to disk, counts bytes, one GET per blob', async t => {
    const c = client('bb:oci')
    const r = await c.resolve('x86_64')
    const layer = r.layers[0] as { digest: string, size: number, mediaType: string }
    const before = reg.count('GET', `/blobs/${layer.digest}`)
    const dest = join(work, 'layer.tar.gz')
    let bytes = 0
    await c.downloadBlob(layer, dest, n => { bytes += n })
    t.equal(bytes, layer.size)
    t.equal(sha256(readFileSync(dest)), layer.digest)
    t.equal(reg.count('GET', `/blobs/${layer.digest}`) - before, 1)
  })

  t.test('404 for a tag and for a blob: one line naming the URL and status', async t => {
    await t.rejects(client('bb:nope').resolve('x86_64'), {
      code: 'REGISTRY', message: `URL ${reg.url}/v2/bb/manifests/nope returned error code: 404 Not Found`
    })
    await t.rejects(client('nothere:1').headDigest('x86_64'), { message: `URL ${reg.url}/v2/nothere/manifests/1 returned error code: 404 Not Found` })
    const missing = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: `sha256:${'0'.repeat(64)}`, size: 10 }
    const dest = join(work, 'missing')
    await t.rejects(client('bb:oci').downloadBlob(missing, dest), {
      code: 'REGISTRY', message: `URL ${reg.url}/v2/bb/blobs/${missing.digest} returned error code: 404 Not Found`
    })
    t.notOk(existsSync(dest), 'no file left behind')
  })

  t.test('a descriptor whose digest does not match the bytes leaves no file', async t => {
    const c = client('bb:oci')
    const r = await c.resolve('x86_64')
    const layer = r.layers[0] as { digest: string, size: number, mediaType: string }
    const dest = join(work, 'short')
    await t.rejects(c.downloadBlob({ ...layer, size: layer.size - 1 }, dest), { code: 'DIGEST', message: `Checksum mismatch: ${layer.digest}` })
    t.notOk(existsSync(dest))
  })
}
