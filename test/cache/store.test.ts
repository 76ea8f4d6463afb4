// The cache across real, separate processes run as the unprivileged user: single-flight downloads and
// builds, crash recovery after SIGKILL, clean-up on SIGTERM, and a read-only shared cache.
import t from 'tap'
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync, mkdirSync, chmodSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { userTmp } from '../helpers/env.js'
import { startWorker } from './fixtures/spawn-worker.js'
import { blobSpec, content, type BlobSpec } from './fixtures/content.js'
import { callLog, calls, preparedCache, waitForFile } from './fixtures/dirs.js'
import { cacheLayout, blobPath, imagePath, blobLock, imageLock } from '../../launcher/src/cache/layout.js'
import type { Job } from './fixtures/cache-worker.js'

type T = Parameters<typeof userTmp>[0]
const KEY = 'c0ffee'.padEnd(64, '0')
const BLOBS: BlobSpec[] = [blobSpec('layer-a', 300_000), blobSpec('layer-b', 200_000), blobSpec('config', 2_000)]
const IMAGE = Buffer.concat(BLOBS.map(b => content(b.seed, b.size)))
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

function job (dir: string, over: Partial<Job> = {}): Job {
  return { cache: join(dir, 'cache'), scratch: join(dir, 'scratch'), staleS: 30, timeoutS: 60, callLog: join(dir, 'calls.log'), blobs: BLOBS, imageKey: KEY, chunks: 10, chunkDelayMs: 20, ...over }
}

t.test('8 concurrent importers fetch each blob once, build once, and all get identical bytes', async t => {
  const dir = userTmp(t as unknown as T)
  const log = callLog(dir)
  const L = cacheLayout(join(dir, 'cache'))
  // Watch the final names the whole time: any file seen there must already be complete.
  const finals = [...BLOBS.map(b => [blobPath(L, b.digest), b.size] as const), [imagePath(L, KEY), IMAGE.length] as const]
  const partial: string[] = []
  const watch = setInterval(() => {
    for (const [p, size] of finals) { try { const s = statSync(p).size; if (s !== size) partial.push(`${p}: ${s}`) } catch {} }
  }, 2)
  const workers = Array.from({ length: 8 }, (_, i) => startWorker(job(dir, { scratch: join(dir, `node${i}`) })))
  const results = await Promise.all(workers.map(async w => await w.done))
  clearInterval(watch)
  for (const r of results) t.equal(r.status, 0, 'exits 0', { stderr: r.stderr })
  const lines = calls(log)
  for (const b of BLOBS) t.equal(lines.filter(l => l.startsWith(`fetch ${b.digest} `)).length, 1, `one fetch of ${b.seed}`)
  t.equal(lines.filter(l => l.startsWith('build ')).length, 1, 'one build')
  t.same(new Set(results.map(r => r.result.image?.sha256)), new Set([sha(IMAGE)]), 'identical images')
  t.equal(results.filter(r => r.result.image?.built === true).length, 1, 'one process reports building')
  t.same(partial, [], 'no partial file ever visible at a final path')
  t.same(readdirSync(L.locks).filter(n => !n.startsWith('.')), [], 'no lock left')
  t.same(readdirSync(L.tmp), [], 'no temporary left')
  t.equal(statSync(imagePath(L, KEY)).mode & 0o777, 0o400, 'entries are read-only, private like the cache')
})

async function killedWhile (t: T, phase: 'fetch' | 'build', signal: NodeJS.Signals): Promise<{ dir: string, log: string }> {
  const dir = userTmp(t)
  const log = callLog(dir)
  preparedCache(dir)
  const marker = join(dir, 'm')
  // Slow enough to be killed in the middle: 50 chunks × 40 ms.
  const w = startWorker(job(dir, { chunks: 50, chunkDelayMs: 40, marker, ...(phase === 'fetch' ? { blobs: BLOBS.slice(0, 1) } : {}) }))
  await waitForFile(`${marker}.${phase}`)
  await new Promise(resolve => setTimeout(resolve, 200))
  w.child.kill(signal)
  const r = await w.done
  if (r.signal !== signal) throw new Error(`worker ended with ${String(r.status)}/${String(r.signal)}: ${r.stderr}`)
  return { dir, log }
}

t.test('SIGKILL during a download leaves nothing trusted and the next run takes over the dead lock', async t => {
  const { dir, log } = await killedWhile(t as unknown as T, 'fetch', 'SIGKILL')
  const L = cacheLayout(join(dir, 'cache'))
  const b = BLOBS[0] as BlobSpec
  t.notOk(existsSync(blobPath(L, b.digest)), 'no entry')
  t.ok(existsSync(blobLock(L, b.digest)), 'the dead holder\'s lock is still there')
  t.equal(readdirSync(L.tmp).filter(n => n.endsWith('.part')).length, 1, 'its partial file sits in tmp/')
  // ENROOT_LOCK_STALE stays 30 s: the holder was on this host and is gone, so no need to wait for staleness.
  const started = Date.now()
  const r = await startWorker(job(dir, { blobs: [b], imageKey: undefined })).done
  t.equal(r.status, 0, 'exits 0', { stderr: r.stderr })
  t.ok(Date.now() - started < 15_000, 'recovered without waiting for ENROOT_LOCK_STALE')
  t.equal(sha(readFileSync(blobPath(L, b.digest))), b.digest.slice(7), 'a good entry')
  t.equal(calls(log).length, 2, 'fetched again')
  t.same(readdirSync(L.tmp), [], 'the dead holder\'s partial file was removed')
  t.notOk(existsSync(blobLock(L, b.digest)), 'lock released')
})

t.test('SIGKILL during a build leaves no image and the next run builds it without downloading again', async t => {
  const { dir, log } = await killedWhile(t as unknown as T, 'build', 'SIGKILL')
  const L = cacheLayout(join(dir, 'cache'))
  t.notOk(existsSync(imagePath(L, KEY)), 'no image entry')
  t.ok(existsSync(imageLock(L, KEY)), 'the dead builder\'s lock is still there')
  const r = await startWorker(job(dir, { chunkDelayMs: 1 })).done
  t.equal(r.status, 0, 'exits 0', { stderr: r.stderr })
  t.equal(r.result.image?.sha256, sha(IMAGE), 'a good image')
  t.equal(r.result.image?.built, true)
  const lines = calls(log)
  t.equal(lines.filter(l => l.startsWith('fetch ')).length, BLOBS.length, 'blobs came from the cache')
  t.equal(lines.filter(l => l.startsWith('build ')).length, 2, 'built again')
  t.same(readdirSync(L.tmp), [], 'no temporary left')
})

t.test('SIGTERM during a download removes the partial file and the lock before dying by the signal', async t => {
  const { dir } = await killedWhile(t as unknown as T, 'fetch', 'SIGTERM')
  const L = cacheLayout(join(dir, 'cache'))
  t.same(readdirSync(L.tmp), [], 'no partial file')
  t.same(readdirSync(L.locks), [], 'no lock')
  t.notOk(existsSync(blobPath(L, (BLOBS[0] as BlobSpec).digest)), 'no entry')
})

t.test('a cache the user cannot write is used read-only: hits are served, misses are produced privately', async t => {
  const dir = userTmp(t as unknown as T)
  const log = callLog(dir)
  // A cluster cache written by another account (here root), readable by everyone.
  const root = join(dir, 'cache')
  const L = cacheLayout(root)
  for (const d of [root, L.blobs, L.images, L.tmp, L.locks]) { mkdirSync(d, { recursive: true }); chmodSync(d, 0o755) }
  const [hit, miss] = BLOBS as [BlobSpec, BlobSpec]
  writeFileSync(blobPath(L, hit.digest), content(hit.seed, hit.size), { mode: 0o444 })
  const r = await startWorker(job(dir, { blobs: [hit, miss], imageKey: undefined, chunkDelayMs: 1 })).done
  t.equal(r.status, 0, 'exits 0', { stderr: r.stderr })
  t.same(r.result.blobs?.map(b => b.fetched), [false, true])
  t.equal(r.result.blobs?.[0]?.path, blobPath(L, hit.digest), 'the hit is the shared entry')
  t.ok(r.result.blobs?.[1]?.path.startsWith(join(dir, 'scratch')), 'the miss went to private scratch')
  t.same(calls(log).map(l => l.split(' ')[1]), [miss.digest])
  t.notOk(existsSync(blobPath(L, miss.digest)), 'the shared cache was not written')
})

t.test('a truncated entry is not trusted: it is replaced under the lock', async t => {
  const dir = userTmp(t as unknown as T)
  const log = callLog(dir)
  const root = preparedCache(dir)
  const b = BLOBS[2] as BlobSpec
  const L = cacheLayout(root)
  writeFileSync(blobPath(L, b.digest), content(b.seed, b.size).subarray(0, 100))
  const r = await startWorker(job(dir, { blobs: [b], imageKey: undefined, chunkDelayMs: 1 })).done
  t.equal(r.status, 0, 'exits 0', { stderr: r.stderr })
  t.equal(r.result.blobs?.[0]?.fetched, true)
  t.equal(statSync(blobPath(L, b.digest)).size, b.size)
  t.equal(calls(log).length, 1)
})
