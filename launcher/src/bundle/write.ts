// Writing a bundle: the payload is the system tar, piped through the image's compressor, into a file; then
// header + payload go to a temporary file next to the output, which is renamed into place only when
// complete. The subprocesses are tracked so that an interrupted bundle can kill them and leave nothing.
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { createReadStream, createWriteStream, chmodSync, existsSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { Transform, type TransformCallback } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { CompressionPlan } from './plan.js'
import { EnrootError, fromSystemError } from '../util/errors.js'
import { log } from '../util/log.js'
import { removeTree } from '../runtime/rootfs-store.js'

/** The subprocesses running now, for the interrupt handler. */
export const running = new Set<ChildProcess>()

function track (child: ChildProcess): ChildProcess {
  running.add(child)
  child.on('close', () => running.delete(child))
  return child
}

function exited (child: ChildProcess, name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    child.on('error', (err) => reject(new EnrootError('NOT_FOUND', `Command not found: ${name}`, { cause: err })))
    child.on('close', (code, signal) => {
      if (code === 0) resolve()
      else reject(new EnrootError('IMAGE', `${name} failed (${signal ?? `exit status ${String(code)}`})`))
    })
  })
}

/** Run argv with stdout on our stderr (stdout is for command output only); resolves when it succeeded. */
export async function runStep (argv: readonly string[]): Promise<void> {
  log.debug(argv.join(' '))
  const child = track(spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 2, 2] }))
  await exited(child, argv[0] as string)
}

/**
 * Remove a tree that killed subprocesses were writing to: their last writes can land after the kill, so
 * retry for up to a second (synchronously: this runs in a signal handler).
 */
export function removeSoon (path: string): void {
  const pause = new Int32Array(new SharedArrayBuffer(4))
  for (let i = 0; i < 20; i++) {
    try { removeTree(path); if (!existsSync(path)) return } catch {}
    Atomics.wait(pause, 0, 0, 50)
  }
}

/** tar's options for a reproducible archive (enroot's --tar-extra, plus sorted names). */
export function tarArgv (dir: string, sourceDateEpoch?: number): string[] {
  return ['tar', '-C', dir, '--sort=name', '--format=gnu', '--numeric-owner', '--owner=0', '--group=0', '--ignore-failed-read',
    ...(sourceDateEpoch === undefined ? [] : [`--mtime=@${sourceDateEpoch}`]), '-cf', '-', '.']
}

class Counter extends Transform {
  bytes = 0
  readonly hash = createHash('sha256')
  constructor (private readonly hashing: boolean) { super() }
  override _transform (chunk: Buffer, _: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length
    if (this.hashing) this.hash.update(chunk)
    cb(null, chunk)
  }
}

export interface PayloadResult {
  /** bytes of the (compressed) payload */
  size: number
  /** bytes of the tar archive */
  uncompressedSize: number
  sha256: string
}

/** tar the directory through the compressor into file. */
export async function writePayload (dir: string, file: string, compression: CompressionPlan, sourceDateEpoch?: number): Promise<PayloadResult> {
  const tarv = tarArgv(dir, sourceDateEpoch)
  log.debug(`${tarv.join(' ')}${compression.compress.length > 0 ? ` | ${compression.compress.join(' ')}` : ''} > ${file}`)
  const tar = track(spawn(tarv[0] as string, tarv.slice(1), { stdio: ['ignore', 'pipe', 2] }))
  const tarDone = exited(tar, 'tar')
  const raw = new Counter(false)
  const out = new Counter(true)
  const steps: Array<Promise<unknown>> = [tarDone]
  if (compression.compress.length === 0) {
    steps.push(pipeline(tar.stdout as NodeJS.ReadableStream, raw, out, createWriteStream(file)))
  } else {
    const [prog, ...args] = compression.compress as [string, ...string[]]
    const comp = track(spawn(prog, args, { stdio: ['pipe', 'pipe', 2] }))
    steps.push(exited(comp, prog))
    steps.push(pipeline(tar.stdout as NodeJS.ReadableStream, raw, comp.stdin as NodeJS.WritableStream))
    steps.push(pipeline(comp.stdout as NodeJS.ReadableStream, out, createWriteStream(file)))
  }
  const results = await Promise.allSettled(steps)
  // the first failing process names the problem better than the broken pipe it caused downstream
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
  if (failed !== undefined) {
    const e = failed.reason as Error
    throw e instanceof EnrootError ? e : fromSystemError(e, file)
  }
  return { size: out.bytes, uncompressedSize: raw.bytes, sha256: out.hash.digest('hex') }
}

/** header + payload into tmp (mode 0755), then renamed to output: the output is complete or absent. */
export async function assemble (header: string, payloadFile: string, tmp: string, output: string): Promise<void> {
  try {
    writeFileSync(tmp, header, { mode: 0o755 })
    await pipeline(createReadStream(payloadFile), createWriteStream(tmp, { flags: 'a' }))
    chmodSync(tmp, 0o755)
    renameSync(tmp, output)
  } catch (err) {
    rmSync(tmp, { force: true })
    throw fromSystemError(err, output)
  }
}
