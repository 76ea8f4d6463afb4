import t from 'tap'
import { parseArch, selectManifest, isAttestation, listPlatforms } from '../../launcher/src/image/platform.js'
import type { Descriptor } from '../../launcher/src/image/types.js'

t.test('maps kernel and Docker architecture names, with variants', async t => {
  t.same(parseArch('x86_64'), { architecture: 'amd64' })
  t.same(parseArch('amd64'), { architecture: 'amd64' })
  t.same(parseArch('aarch64'), { architecture: 'arm64', variant: 'v8' })
  t.same(parseArch('arm64'), { architecture: 'arm64', variant: 'v8' })
  t.same(parseArch('arm64/v8'), { architecture: 'arm64', variant: 'v8' })
  t.same(parseArch('linux/arm/v6'), { architecture: 'arm', variant: 'v6' })
  t.same(parseArch('ppc64le'), { architecture: 'ppc64le' })
  for (const bad of ['mips', 'i386', 'arm64/x', 'arm64/v8/extra', '']) {
    t.throws(() => parseArch(bad), { code: 'INVALID', message: `Unsupported architecture: ${bad}` }, bad)
  }
})

const d = (n: number, platform?: Descriptor['platform'], annotations?: Record<string, string>): Descriptor => ({
  mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${String(n).repeat(64).slice(0, 64)}`, size: 1,
  ...(platform === undefined ? {} : { platform }), ...(annotations === undefined ? {} : { annotations })
})

t.test('selects by os, architecture and variant; skips attestations', async t => {
  const entries = [
    d(1, { os: 'linux', architecture: 'amd64' }, { 'vnd.docker.reference.type': 'attestation-manifest' }),
    d(2, { os: 'unknown', architecture: 'unknown' }),
    d(3, { os: 'windows', architecture: 'amd64' }),
    d(4, { os: 'linux', architecture: 'arm', variant: 'v6' }),
    d(5, { os: 'linux', architecture: 'arm', variant: 'v7' }),
    d(6, { os: 'linux', architecture: 'amd64' }),
    d(7, { os: 'linux', architecture: 'arm64' })
  ]
  t.equal(selectManifest(entries, parseArch('x86_64'))?.digest, entries[5]?.digest, 'not the attestation, not windows')
  t.equal(selectManifest(entries, parseArch('arm'))?.digest, entries[4]?.digest, 'arm means arm/v7')
  t.equal(selectManifest(entries, parseArch('arm/v6'))?.digest, entries[3]?.digest)
  t.equal(selectManifest(entries, parseArch('arm64/v8'))?.digest, entries[6]?.digest, 'an entry without variant is arm64/v8')
  t.equal(selectManifest(entries, parseArch('ppc64le')), undefined)
  t.ok(isAttestation(entries[0] as Descriptor))
  t.equal(listPlatforms(entries), 'windows/amd64, linux/arm/v6, linux/arm/v7, linux/amd64, linux/arm64')
})
