// Registry images through srun, end to end, as the test user: spank_enroot.so + the real launcher on the
// suite's 3-node cluster, pulling from the suite's anonymous registry (plain HTTP, enabled by the admin
// with plugstack allow_http=1). Proves pull-once-per-cluster with a shared cache written only by a
// dedicated account, clean-up of node-local scratch, scancel during an import, and failures that reach
// srun's stderr as one line per node.
import t from 'tap'
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { createServer, connect, type Server, type Socket } from 'node:net'
import { join } from 'node:path'
import { buildShim, startCluster, clusterUnavailableReason, cacheAccount, NODE_LOCAL, type Cluster } from '../helpers/slurm-cluster.js'
import { startRegistry, registryAvailable, type TestRegistry } from '../helpers/registry.js'
import { busyboxImage, writeOciLayout, pushLayout, BUSYBOX_ENV } from '../helpers/oci-image.js'
import { requireFeature, testUser, REPO, ENROOT } from '../helpers/env.js'

const why = clusterUnavailableReason()
const reg = registryAvailable()
const built = existsSync(join(REPO, 'dist', 'cli.js'))

/** A TCP proxy that forwards at about `bytesPerSecond`: makes an import slow enough to scancel. */
async function slowProxy (port: number, bytesPerSecond: number): Promise<{ port: number, close: () => Promise<void> }> {
  const sockets = new Set<Socket>()
  const server: Server = createServer((client) => {
    const upstream = connect(port, '127.0.0.1')
    sockets.add(client); sockets.add(upstream)
    client.pipe(upstream)
    upstream.on('data', (chunk: Buffer) => {
      upstream.pause()
      client.write(chunk)
      setTimeout(() => upstream.resume(), Math.ceil(chunk.length / bytesPerSecond * 1000))
    })
    const end = (): void => { client.destroy(); upstream.destroy() }
    client.on('error', end); upstream.on('error', end); client.on('close', end); upstream.on('close', end)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as { port: number }).port,
    close: async () => { for (const s of sockets) s.destroy(); await new Promise(resolve => server.close(resolve)) }
  }
}

if (requireFeature(t, 'Slurm cluster', why === undefined, why) &&
    requireFeature(t, 'the test registry', reg.ok, reg.why) &&
    requireFeature(t, 'the built launcher (npm run build)', built)) {
  let cluster: Cluster
  let registry: TestRegistry
  let so: string
  const user = testUser()
  const env = {
    XDG_RUNTIME_DIR: `${NODE_LOCAL}/run`, XDG_DATA_HOME: `${NODE_LOCAL}/data`, XDG_CACHE_HOME: `${NODE_LOCAL}/cache`, TMPDIR: `${NODE_LOCAL}/tmp`
  }
  const base = (): string => `required ${so} launcher=${ENROOT} runtime_path=${NODE_LOCAL}/pyxis allow_http=1`
  let image: string

  t.before(async () => {
    so = buildShim()
    cluster = await startCluster()
    cluster.setPlugstack(`${base()}\n`)
    registry = await startRegistry({ dir: join(cluster.dir, 'registry') })
    await pushLayout(writeOciLayout(join(cluster.dir, 'oci-busybox'), 'latest', busyboxImage()), registry, 'busybox:latest')
    image = `${registry.host}#busybox`
    const r = await cluster.srun(['-N3', 'mkdir', '-p', `${NODE_LOCAL}/data/enroot`, `${NODE_LOCAL}/run`, `${NODE_LOCAL}/cache`, `${NODE_LOCAL}/tmp`])
    if (r.status !== 0) throw new Error(r.stderr)
  })
  t.teardown(async () => { await registry?.stop(); await cluster?.stop() })

  /** Whatever a step left on a node: runtime directories, scratch, temporary squashfs files, unnamed rootfs. */
  const leftovers = (node: string): string[] => {
    const local = cluster.nodeLocal(node)
    const ls = (rel: string): string[] => { try { return readdirSync(join(local, rel)).map(n => `${rel}/${n}`) } catch { return [] } }
    return [...ls(`pyxis/${user.uid}`), ...ls('run/enroot'), ...ls('tmp'), ...ls('data/enroot').filter(p => !/\/pyxis_[^0-9]/.test(p))]
  }

  t.test('srun -N3 --container-image=127.0.0.1:PORT#busybox hostname prints node1..node3 as the test user', async t => {
    const r = await cluster.srun(['-N3', `--container-image=${image}`, 'sh', '-c', 'echo $(hostname) $(id -u) $PATH'], { env })
    t.equal(r.status, 0, r.stderr)
    t.same(r.stdout.trim().split('\n').sort(), cluster.nodeNames.map(n => `${n} ${user.uid} ${BUSYBOX_ENV[0]?.slice(5) ?? ''}`))
    for (const n of cluster.nodeNames) t.same(leftovers(n), [], `${n}: nothing left in node-local scratch or the runtime directory`)
  })

  t.test('a warm step imports nothing and still cleans up', async t => {
    const before = registry.count('GET', '/blobs/')
    const r = await cluster.srun(['-N3', `--container-image=${image}`, 'hostname'], { env })
    t.equal(r.status, 0, r.stderr)
    t.same(r.stdout.trim().split('\n').sort(), cluster.nodeNames)
    t.equal(registry.count('GET', '/blobs/') - before, 0, 'every node found the image in its own cache')
    for (const n of cluster.nodeNames) t.same(leftovers(n), [])
  })

  t.test('a launcher failure fails the step on every node with one clear line, no hang', async t => {
    const missing = await cluster.srun(['-N3', `--container-image=${registry.host}#nothere`, 'true'], { env, timeoutMs: 30_000 })
    t.not(missing.status, 0)
    const lines = missing.stderr.split('\n').filter(l => /enroot: failed to import docker image: 127\.0\.0\.1:\d+#nothere: /.test(l))
    t.equal(lines.length, 3, missing.stderr)
    const down = await cluster.srun(['-N2', '--container-image=127.0.0.1:1#busybox', 'true'], { env, timeoutMs: 30_000 })
    t.not(down.status, 0)
    t.equal(down.stderr.split('\n').filter(l => /enroot: failed to import docker image: 127\.0\.0\.1:1#busybox: /.test(l)).length, 2, down.stderr)
    for (const n of cluster.nodeNames) t.same(leftovers(n), [])
  })

  t.test('pull once per cluster: a shared cache written only by the cache account', async t => {
    const account = cacheAccount()
    const dir = join(cluster.dir, 'shared-cache')
    mkdirSync(dir, { mode: 0o755 })
    chownSync(dir, account.uid, account.gid)
    chmodSync(dir, 0o755)
    cluster.setPlugstack(`${base()} cache=shared:${dir} cache_user=${account.name}\n`)
    t.teardown(() => { cluster.setPlugstack(`${base()}\n`) })
    // A new image (its own config blob, the busybox layer): a cold start for the shared cache.
    const layout = writeOciLayout(join(cluster.dir, 'oci-cold'), 'latest', busyboxImage({ config: { Env: BUSYBOX_ENV, Cmd: ['sh'], Labels: { cold: '1' } } }))
    await pushLayout(layout, registry, 'cold:latest')
    const blobs = (layout.manifests[0]?.layers.length ?? 0) + 1
    const before = registry.count('GET', '/blobs/')
    const r = await cluster.srun(['-N3', `--container-image=${registry.host}#cold`, 'hostname'], { env })
    t.equal(r.status, 0, r.stderr)
    t.same(r.stdout.trim().split('\n').sort(), cluster.nodeNames)
    t.equal(registry.count('GET', '/blobs/') - before, blobs, 'a 3-node cold start GETs each blob exactly once')
    const images = readdirSync(join(dir, 'images')).filter(f => f.endsWith('.sqsh'))
    t.equal(images.length, 1, 'converted once')
    for (const f of images) {
      const st = statSync(join(dir, 'images', f))
      t.equal(st.uid, account.uid, 'written by the cache account, not by the job user')
    }
    t.same(readdirSync(join(dir, 'locks')).filter(f => !f.startsWith('.')), [], 'no lock left')
    t.same(readdirSync(join(dir, 'tmp')), [], 'no partial file left')

    const warm = registry.count('GET', '/blobs/')
    const again = await cluster.srun(['-N3', `--container-image=${registry.host}#cold`, 'hostname'], { env })
    t.equal(again.status, 0, again.stderr)
    t.equal(registry.count('GET', '/blobs/') - warm, 0, 'a second step is warm')
    for (const n of cluster.nodeNames) t.same(leftovers(n), [])

    // Two steps starting the same (new) image at once: both succeed, each blob still fetched once.
    const twin = writeOciLayout(join(cluster.dir, 'oci-twin'), 'latest', busyboxImage({ config: { Env: BUSYBOX_ENV, Cmd: ['sh'], Labels: { twin: '1' } } }))
    await pushLayout(twin, registry, 'twin:latest')
    const b2 = registry.count('GET', '/blobs/')
    const [x, y] = await Promise.all([1, 2].map(async () => await cluster.srun(['-N3', `--container-image=${registry.host}#twin`, 'hostname'], { env })))
    t.equal(x?.status, 0, x?.stderr)
    t.equal(y?.status, 0, y?.stderr)
    t.equal(registry.count('GET', '/blobs/') - b2, 1, 'only the new config blob; the layer was already shared')
  })

  t.test('a private image the cache account cannot read falls back to the per-user cache', async t => {
    const account = cacheAccount()
    const dir = join(cluster.dir, 'shared-cache-private')
    mkdirSync(dir, { mode: 0o755 })
    chownSync(dir, account.uid, account.gid)
    const priv = await startRegistry({ dir: join(cluster.dir, 'registry-private'), auth: { kind: 'basic', user: 'alice', password: 's3cret' } })
    t.teardown(async () => { await priv.stop() })
    await pushLayout(writeOciLayout(join(cluster.dir, 'oci-private'), 'latest', busyboxImage({ config: { Env: BUSYBOX_ENV, Labels: { private: '1' } } })), priv, 'secret:latest')
    // The job user's credentials (enroot's netrc-style file); the cache account never sees them.
    const conf = join(cluster.shared, 'enroot-config')
    mkdirSync(conf, { mode: 0o700 })
    writeFileSync(join(conf, '.credentials'), `machine 127.0.0.1 login alice password s3cret\n`, { mode: 0o600 })
    for (const p of [conf, join(conf, '.credentials')]) chownSync(p, user.uid, user.gid)
    cluster.setPlugstack(`${base()} cache=shared:${dir} cache_user=${account.name}\n`)
    t.teardown(() => { cluster.setPlugstack(`${base()}\n`) })
    const r = await cluster.srun(['-N2', `--container-image=${priv.host}#secret`, 'hostname'], { env: { ...env, ENROOT_CONFIG_PATH: conf } })
    t.equal(r.status, 0, r.stderr)
    t.same(r.stdout.trim().split('\n').sort(), ['node1', 'node2'])
    let images: string[] = []
    try { images = readdirSync(join(dir, 'images')).filter(f => f.endsWith('.sqsh')) } catch {}
    t.same(images, [], 'the private image never reached the shared cache')
    t.ok(priv.accessLog().some(e => e.status === 401), 'the cache account was refused')
  })

  t.test('scancel during an import: the step ends promptly, the cache stays consistent', async t => {
    const big = writeOciLayout(join(cluster.dir, 'oci-big'), 'latest', {
      layers: [...busyboxImage().layers, { tar: randomTar(24 << 20), compression: 'none' }],
      config: { Env: BUSYBOX_ENV, Cmd: ['sh'] }
    })
    await pushLayout(big, registry, 'big:latest')
    const proxy = await slowProxy(Number(registry.host.split(':')[1]), 1 << 20)
    t.teardown(proxy.close)
    const job = cluster.srun(['-N1', '-w', 'node1', '--job-name=scancel-me', `--container-image=127.0.0.1:${proxy.port}#big`, 'true'], { env, timeoutMs: 60_000 })
    const cache = join(cluster.nodeLocal('node1'), 'cache', 'enroot')
    const entries = (): string[] => { try { return readdirSync(join(cache, 'images')).filter(f => f.endsWith('.sqsh')) } catch { return [] } }
    const imagesBefore = entries()
    // Wait until the import is downloading (a partial file exists), then cancel.
    for (let i = 0; i < 200; i++) {
      await new Promise(resolve => setTimeout(resolve, 50))
      try { if (readdirSync(join(cache, 'tmp')).length > 0) break } catch {}
    }
    t.ok(readdirSync(join(cache, 'tmp')).length > 0, 'the import was under way')
    const began = Date.now()
    const c = await cluster.client('scancel', ['--name=scancel-me'])
    t.equal(c.status, 0, c.stderr)
    await job
    // The launcher is told (SIGTERM) and cleans up: partial file and lock go, the step's slurmstepd exits.
    const settled = (): boolean => readdirSync(join(cache, 'tmp')).length === 0 && readdirSync(join(cache, 'locks')).filter(f => !f.startsWith('.')).length === 0
    while (!settled() && Date.now() - began < 30_000) await new Promise(resolve => setTimeout(resolve, 100))
    t.ok(Date.now() - began < 15_000, `the import stopped promptly (${Date.now() - began} ms)`)
    t.same(readdirSync(join(cache, 'tmp')), [], 'no partial file left')
    t.same(readdirSync(join(cache, 'locks')).filter(f => !f.startsWith('.')), [], 'no lock left')
    t.same(entries(), imagesBefore, 'no entry for the cancelled image')
    t.same(leftovers('node1'), [])
  })
}

/** An uncompressed tar with one file of incompressible bytes (a layer that takes time to download). */
function randomTar (size: number): Buffer {
  return execFileSync('sh', ['-c', `d=$(mktemp -d) && head -c ${size} /dev/urandom > $d/blob && tar --owner=0 --group=0 -C $d -cf - blob && rm -rf $d`], { maxBuffer: size + (1 << 20) })
}
