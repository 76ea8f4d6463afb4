// A registry for the build's training runs (scripts/bundle.mjs): one image, `train/image:latest`, served
// from this process on 127.0.0.1, plain HTTP and anonymous, so the code cache of the commands that talk
// to a registry learns their real path (manifest, configuration, blobs, the cache lookup) at build time.
// The image is one gzip layer with a few files (no shell: the training containers fail after start-up).
import { createServer } from 'node:http'
import { createHash } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { gzipSync } from 'node:zlib'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export const TRAIN_IMAGE = 'train/image'
const ARCH = { x64: 'amd64', arm64: 'arm64', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' }[process.arch] ?? process.arch
const digest = (b) => `sha256:${createHash('sha256').update(b).digest('hex')}`

function layerTar () {
  const dir = mkdtempSync(join(tmpdir(), 'enroot-train-layer-'))
  try {
    for (const d of ['etc', 'bin', 'tmp', 'usr']) mkdirSync(join(dir, d))
    writeFileSync(join(dir, 'etc', 'hostname'), 'train\n')
    return execFileSync('tar', ['-C', dir, '--numeric-owner', '--owner=0', '--group=0', '-cf', '-', '.'], { maxBuffer: 1 << 24 })
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** Starts the registry; resolves with its host:port and a close(). */
export async function startTrainingRegistry () {
  const tar = layerTar()
  const layer = gzipSync(tar)
  const config = Buffer.from(JSON.stringify({
    architecture: ARCH, os: 'linux',
    config: { Env: ['PATH=/usr/bin:/bin'], Cmd: ['/enroot-training-run'], Volumes: { '/data': {} }, WorkingDir: '/tmp' },
    rootfs: { type: 'layers', diff_ids: [digest(tar)] }
  }))
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digest(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: digest(layer), size: layer.length }]
  }))
  const blobs = new Map([[digest(config), config], [digest(layer), layer]])
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x')
    const send = (status, body, type) => {
      res.writeHead(status, { 'Content-Type': type, 'Content-Length': body.length, 'Docker-Content-Digest': digest(body) })
      res.end(req.method === 'HEAD' ? undefined : body)
    }
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(url.pathname)
    if (url.pathname === '/v2/') return send(200, Buffer.from('{}'), 'application/json')
    if (m !== null && m[1] === TRAIN_IMAGE && m[2] === 'manifests' && (m[3] === 'latest' || m[3] === digest(manifest))) {
      return send(200, manifest, 'application/vnd.oci.image.manifest.v1+json')
    }
    if (m !== null && m[1] === TRAIN_IMAGE && m[2] === 'blobs' && blobs.has(m[3])) return send(200, blobs.get(m[3]), 'application/octet-stream')
    send(404, Buffer.from('{"errors":[{"code":"NAME_UNKNOWN"}]}'), 'application/json')
  })
  await new Promise(resolve => server.listen(0, '127.0.0.1', resolve))
  return {
    host: `127.0.0.1:${server.address().port}`,
    close: async () => { server.closeAllConnections(); await new Promise(resolve => server.close(resolve)) }
  }
}
