// `enroot import dockerd://IMAGE` and `podman://IMAGE` (spec §3.8): an image from the local Docker daemon
// or the user's podman storage, through the engine's own CLI.
//
//   <engine> create --name enroot.<nonce> IMAGE      (pulls if needed; a container has a flat export)
//   <engine> export --output scratch/rootfs.tar enroot.<nonce>
//   <engine> image inspect IMAGE                     (top-level keys lowercased: the image config)
//   flatten + tar2sqfs, as for docker://             (one layer; dev/* dropped, .dockerenv whited out)
//   <engine> rm -f -v enroot.<nonce>                 (always, with the same engine: enroot runs
//                                                     `docker rm` even for podman, a bug)
// Provenance is the URI as given. Nothing is cached: the engine's storage is the cache, and an image
// name there has no digest we could trust to stay put. `--arch` only warns on a mismatch, as in enroot.
import { makeDirsAsync } from '../util/fs.js'
import { promises as fsp, rmSync, unlinkSync } from 'node:fs'
import { spawn } from 'node:child_process'
import { basename, dirname, join, resolve } from 'node:path'
import type { Config } from '../config/load.js'
import { EnrootError, fileExists, fromSystemError, noSuchFile } from '../util/errors.js'
import { log } from '../util/log.js'
import { newNonce } from '../cache/lock.js'
import { onInterrupt } from '../cache/interrupt.js'
import { hostArch, parseArch } from './platform.js'
import { imageFiles } from './image-files.js'
import { encodeHeader, END_OF_ARCHIVE } from './tar-writer.js'
import type { ImageConfig, LayerFile } from './types.js'
import type { ImportRequest, ImportResult } from './import.js'

export type Engine = 'docker' | 'podman'

const URI = /^[a-z]+:\/\/([A-Za-z0-9/._:-]+)$/
const ENGINES: Record<string, Engine> = { dockerd: 'docker', podman: 'podman' }

/** dockerd://IMAGE or podman://IMAGE; the image part as enroot's regex allows it, else `Invalid image reference`. */
export function parseDaemonUri (uri: string): { engine: Engine, image: string } {
  const engine = ENGINES[uri.slice(0, uri.indexOf('://'))]
  const m = URI.exec(uri)
  if (engine === undefined || m === null) throw new EnrootError('INVALID', `Invalid image reference: ${uri}`)
  return { engine, image: m[1] as string }
}

/** `nvidia+cuda+11.sqsh` for dockerd://nvidia/cuda:11: both ':' and '/' become '+', no tag is added. */
export const daemonImportName = (image: string): string => `${image.replace(/[:/]/g, '+')}.sqsh`

interface Ran { code: number, stderr: string }

/** One engine command, its stdout and stderr collected. */
async function runEngine (engine: Engine, args: string[]): Promise<Ran & { out: string }> {
  log.debug(`${engine} ${args.join(' ')}`)
  const child = spawn(engine, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  let out = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr.on('data', (d: Buffer) => { if (stderr.length < 65536) stderr += d.toString() })
  const status = await new Promise<number | Error>((resolve) => {
    child.on('error', resolve)
    child.on('close', (code) => resolve(code ?? 128))
  })
  if (status instanceof Error) {
    throw new EnrootError('UNSUPPORTED', `Command not found: ${engine}`, {
      cause: status,
      hint: engine === 'podman' ? 'Install podman (apt-get install podman), or import from a registry (docker://).' : 'Install the Docker CLI, or import from a registry (docker://).'
    })
  }
  return { code: status, stderr, out }
}

/** A failed engine command as one line; for Docker, an unreachable daemon names the socket and the fix. */
function engineError (engine: Engine, what: string, r: Ran): EnrootError {
  const text = r.stderr.trim()
  const socket = /(?:Cannot connect to the Docker daemon|connect to the Docker daemon socket) at ((?:unix|tcp|ssh|fd|npipe):\/\/\S+?)(?:[.:]?\s|[.:]?$)/.exec(text)
  if (engine === 'docker' && socket !== null) {
    const denied = /permission denied/i.test(text)
    return new EnrootError('UNSUPPORTED', `${denied ? 'Permission denied connecting' : 'Cannot connect'} to the Docker daemon at ${socket[1] as string}`, {
      hint: denied
        ? 'Ask for access to the Docker socket (the docker group), or use podman://IMAGE, which needs no daemon.'
        : 'Start dockerd (systemctl start docker) or set DOCKER_HOST to a running daemon; podman://IMAGE needs no daemon.'
    })
  }
  const last = text.split('\n').filter(l => l.trim() !== '').slice(-1)[0] ?? `exit status ${r.code}`
  return new EnrootError('IMAGE', `${engine} ${what} failed: ${last}`)
}

/** `<engine> image inspect` with top-level keys lowercased, so that `.config.Env` and the rest apply (spec §3.8). */
export function inspectToConfig (json: string): ImageConfig {
  let parsed: unknown
  try { parsed = JSON.parse(json) } catch {}
  const first = Array.isArray(parsed) ? parsed[0] as unknown : undefined
  if (typeof first !== 'object' || first === null) throw new EnrootError('IMAGE', 'Could not parse the image inspection')
  return Object.fromEntries(Object.entries(first).map(([k, v]) => [k.toLowerCase(), v])) as ImageConfig
}

/** As import's: must not exist (no --force), its directory must. */
async function outputPath (req: ImportRequest, defaultName: string): Promise<string> {
  const out = resolve(req.cwd, req.output ?? defaultName)
  const parent = await fsp.realpath(dirname(out)).catch(() => { throw noSuchFile(dirname(out)) })
  const path = join(parent, basename(out))
  if (await fsp.lstat(path).then(() => true, () => false)) throw fileExists(path)
  return path
}

/** link(2) never replaces: an output that appeared meanwhile is still `File already exists`. */
async function publish (tmp: string, output: string): Promise<void> {
  try {
    await fsp.link(tmp, output)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EEXIST') throw fileExists(output)
    // A file system without hard links: check, then rename (the window between is as small as it gets).
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw fromSystemError(err, output)
    if (await fsp.lstat(output).then(() => true, () => false)) throw fileExists(output)
    await fsp.rename(tmp, output).catch((e: unknown) => { throw fromSystemError(e, output) })
  }
}

export async function importFromDaemon (cfg: Config, req: ImportRequest): Promise<ImportResult> {
  const { engine, image } = parseDaemonUri(req.uri)
  const output = await outputPath(req, daemonImportName(image))
  const platform = parseArch(req.arch ?? hostArch())
  const progress = req.onProgress ?? (() => {})
  const scratch = join(cfg.get('ENROOT_TEMP_PATH') ?? '/tmp', `enroot.${newNonce()}`)
  const container = basename(scratch)
  const tmpOut = join(dirname(output), `.${basename(output)}.${newNonce()}.tmp`)
  let created = false
  const forget = onInterrupt(() => {
    rmSync(scratch, { recursive: true, force: true })
    try { unlinkSync(tmpOut) } catch {}
    // Synchronous and detached: the signal handler cannot wait for the engine.
    if (created) spawn(engine, ['rm', '-f', '-v', container], { stdio: 'ignore', detached: true }).unref()
  })
  try {
    await makeDirsAsync(scratch, 0o700)
    progress({ kind: 'phase', phase: 'resolve' })
    log.info('Fetching image')
    created = true
    // `--`: an image part starting with '-' (the URI regex allows it) must not be read as an option.
    const c = await runEngine(engine, ['create', '--name', container, '--', image])
    if (c.code !== 0) { created = false; throw engineError(engine, 'create', c) }

    progress({ kind: 'phase', phase: 'download' })
    log.info('Extracting image content...')
    const rootfsTar = join(scratch, 'rootfs.tar')
    // --output, not stdout: podman opens /dev/stdout, which fails on a socket (ENXIO), e.g. under Node.
    const x = await runEngine(engine, ['export', '--output', rootfsTar, container])
    if (x.code !== 0) throw engineError(engine, 'export', x)
    const i = await runEngine(engine, ['image', 'inspect', '--', image])
    if (i.code !== 0) throw engineError(engine, 'image inspect', i)
    const config = inspectToConfig(i.out)
    if (config.architecture !== undefined && config.architecture !== platform.architecture) {
      log.warn(`Image architecture doesn't match the requested one: ${config.architecture} != ${platform.architecture}`)
    }

    // enroot excludes .dockerenv from the export: a whiteout in a layer above hides it (dev/* the
    // flattener drops on its own).
    const hide = join(scratch, 'hide.tar')
    await fsp.writeFile(hide, Buffer.concat([encodeHeader({ name: '.wh..dockerenv', type: 'file', mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 0, linkname: '', devmajor: 0, devminor: 0, xattrs: new Map() }), END_OF_ARCHIVE]))
    const tar = 'application/vnd.oci.image.layer.v1.tar'
    const layers: LayerFile[] = [{ path: rootfsTar, mediaType: tar, digest: `${engine} export ${image}` }, { path: hide, mediaType: tar, digest: 'exclusions' }]

    progress({ kind: 'phase', phase: 'convert' })
    log.info('Creating squashfs filesystem...')
    const { buildSquashfs } = await import('./squash.js')
    const epoch = cfg.get('SOURCE_DATE_EPOCH')
    await buildSquashfs({
      layers, extraFiles: imageFiles(config, req.uri), output: tmpOut, squashOptions: cfg.get('ENROOT_SQUASH_OPTIONS') ?? '',
      processors: cfg.int('ENROOT_MAX_PROCESSORS'), tmpdir: scratch, onProgress: progress,
      ...(epoch !== undefined && epoch !== '' ? { sourceDateEpoch: Number(epoch) } : {})
    })
    progress({ kind: 'phase', phase: 'publish' })
    await publish(tmpOut, output)
    return { output, cachedImage: false, method: 'copy' }
  } finally {
    await fsp.unlink(tmpOut).catch(() => {})
    if (created) {
      const rm = await runEngine(engine, ['rm', '-f', '-v', container]).catch((e: unknown) => ({ code: -1, stderr: String(e) }))
      if (rm.code !== 0) log.debug(`${engine} rm -f -v ${container}: ${rm.stderr.trim()}`)
    }
    rmSync(scratch, { recursive: true, force: true })
    forget()
  }
}
