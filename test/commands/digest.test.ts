// `enroot digest` as the non-root test user against the suite's anonymous registry.
import t from 'tap'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { ENROOT, enrootEnv, requireFeature, runAsUser, userTmp, type RunResult } from '../helpers/env.js'
import { registryAvailable, startRegistry } from '../helpers/registry.js'
import { busyboxImage, pushLayout, skopeoInspect, tarDirectory, writeOciLayout } from '../helpers/oci-image.js'

type T = Parameters<typeof requireFeature>[0]
const avail = registryAvailable()
// under ENROOT_TEST_MUST_WORK=1 a missing registry is a failure (requireFeature), otherwise a skip
if (requireFeature(t as unknown as T, 'registry', avail.ok, avail.why)) await main()

async function main (): Promise<void> {

  const work = userTmp(t as unknown as T, 'enroot-digest-')
  const reg = await startRegistry({ dir: join(work, 'registry') })
  t.teardown(reg.stop)
  const bb = writeOciLayout(join(work, 'bb'), 'v1', busyboxImage())
  await pushLayout(bb, reg, 'bb:v2s2', { format: 'v2s2' })
  mkdirSync(join(work, 'etc'))
  const multi = writeOciLayout(join(work, 'multi'), 'v1', [
    busyboxImage({ architecture: 'amd64' }),
    { layers: [{ tar: tarDirectory(join(work, 'etc')), compression: 'gzip' }], architecture: 'arm64', variant: 'v8' }
  ], { attestation: true })
  await pushLayout(multi, reg, 'multi:1', { all: true })

  // env -u NODE_OPTIONS: tap's process-info hook injects itself into children, and its exit hook cannot
  // write to the repository as the test user (it would print an EACCES stack on stderr)
  const enroot = async (args: string[], e: Record<string, string>): Promise<RunResult> =>
    await runAsUser('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, ENROOT, ...args], { env: e })

  const env = (): Record<string, string> => enrootEnv(userTmp(t as unknown as T), { ENROOT_ALLOW_HTTP: 'y' })

  t.test('prints the same digest as skopeo inspect', async t => {
    const want = (JSON.parse(await skopeoInspect(reg, 'bb:v2s2')) as { Digest: string }).Digest
    const r = await enroot(['digest', `docker://${reg.host}/bb:v2s2`], env())
    t.equal(r.stderr, '')
    t.equal(r.stdout, `${want}\n`)
    t.equal(r.status, 0)
  })

  t.test('an index gives the digest of the per-architecture manifest (--arch, -a, both spellings)', async t => {
    const raw = JSON.parse(await skopeoInspect(reg, 'multi:1', true)) as { manifests: Array<{ digest: string, platform: { architecture: string } }> }
    const of = (arch: string): string => raw.manifests.find(m => m.platform.architecture === arch)?.digest ?? ''
    for (const [args, arch] of [[['--arch', 'aarch64'], 'arm64'], [['-a', 'arm64'], 'arm64'], [['--arch=x86_64'], 'amd64'], [['-a', 'amd64'], 'amd64']] as const) {
      const r = await enroot(['digest', ...args, `docker://${reg.host}#multi:1`], env())
      t.equal(r.stdout, `${of(arch)}\n`, args.join(' '))
      t.equal(r.status, 0)
    }
  })

  t.test('failures exit 1 with one [ERROR] line', async t => {
    const e = env()
    let r = await enroot(['digest', 'dockerd://ubuntu'], e)
    t.same([r.status, r.stderr], [1, '[ERROR] Invalid argument: dockerd://ubuntu\n'])
    r = await enroot(['digest', `docker://${reg.host}/bb:nope`], e)
    t.equal(r.status, 1)
    t.match(r.stderr, `[ERROR] URL http://${reg.host}/v2/bb/manifests/nope returned error code: 404 Not Found\n`)
    r = await enroot(['digest', '-a', 'sparc', `docker://${reg.host}/bb:v2s2`], e)
    t.same([r.status, r.stderr], [1, '[ERROR] Unsupported architecture: sparc\n'])
    r = await enroot(['digest', `docker://${reg.host}/bb:v2s2`], { ...e, ENROOT_ALLOW_HTTP: '' })
    t.equal(r.status, 1)
    t.match(r.stderr, /does not speak HTTPS\n.*ENROOT_ALLOW_HTTP=y/)
  })

  t.test('usage: missing URI prints usage to stdout and exits 1, --help exits 0', async t => {
    const r = await enroot(['digest'], env())
    t.equal(r.status, 1)
    t.match(r.stdout, /^Usage: enroot digest \[options\] \[--\] URI/)
    const h = await enroot(['digest', '--help'], env())
    t.equal(h.status, 0)
    t.match(h.stdout, /-a, --arch/)
  })
}
