// The lock protocol seen from outside: another node's live lock is respected, a dead one is taken over,
// the timeout names the lock and its holder. Holders on "other nodes" are planted lock files whose
// heartbeat the test drives, as a process on another node would.
import t from 'tap'
import { writeFileSync, utimesSync, existsSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { userTmp } from '../helpers/env.js'
import { startWorker } from './fixtures/spawn-worker.js'
import { blobSpec } from './fixtures/content.js'
import { callLog, calls, preparedCache } from './fixtures/dirs.js'
import { cacheLayout, blobLock } from '../../launcher/src/cache/layout.js'
import { acquire, ownerIsDeadHere, observe, removeLockIf, type LockOwner } from '../../launcher/src/cache/lock.js'
import type { Job } from './fixtures/cache-worker.js'

type T = Parameters<typeof userTmp>[0]
const BLOB = blobSpec('lock-test', 10_000)

function owner (over: Partial<LockOwner> = {}): LockOwner {
  return { host: 'node-elsewhere', pid: 4242, bootId: 'b00t', pidns: 'pid:[1]', pidStart: '1', uid: 1, nonce: 'feedfacefeedface', start: '2026-01-01T00:00:00.000Z', ...over }
}

function setup (t: T, over: Partial<Job> = {}): { job: Job, lock: string, log: string } {
  const dir = userTmp(t)
  const log = callLog(dir)
  const cache = preparedCache(dir)
  const job: Job = { cache, scratch: join(dir, 'scratch'), staleS: 1, timeoutS: 60, callLog: log, blobs: [BLOB], chunks: 1, chunkDelayMs: 1, ...over }
  return { job, lock: blobLock(cacheLayout(cache), BLOB.digest), log }
}

const sleep = async (ms: number): Promise<void> => await new Promise(resolve => setTimeout(resolve, ms))

t.test('a lock held by a live process on another node is waited on, not stolen, and taken over once its heartbeat stops', async t => {
  const { job, lock, log } = setup(t as unknown as T)
  writeFileSync(lock, JSON.stringify(owner()))
  let lastBeat = Date.now()
  const beat = setInterval(() => { const now = new Date(); utimesSync(lock, now, now); lastBeat = now.getTime() }, 150)
  const w = startWorker(job)
  let ended = false
  void w.done.then(() => { ended = true })
  await sleep(3000) // three times ENROOT_LOCK_STALE, with a fresh heartbeat all along
  t.notOk(ended, 'still waiting')
  t.same(calls(log), [], 'did not fetch')
  t.equal(JSON.parse(readFileSync(lock, 'utf8')).host, 'node-elsewhere', 'the lock is untouched')
  clearInterval(beat)
  const r = await w.done
  t.equal(r.status, 0, 'exits 0', { stderr: r.stderr })
  // from the last heartbeat, which may be up to one beat before the stop (and a little slack for timers)
  t.ok(Date.now() - lastBeat >= 950, 'took over only after ENROOT_LOCK_STALE without a heartbeat')
  t.match(r.stderr, /Removed a stale cache lock .* held by pid 4242 on node-elsewhere .*no heartbeat for 1 s/)
  t.equal(calls(log).length, 1, 'fetched once')
  t.notOk(existsSync(lock), 'released')
})

t.test('waiting longer than ENROOT_LOCK_TIMEOUT fails with the lock\'s path and its holder', async t => {
  const { job, lock, log } = setup(t as unknown as T, { staleS: 30, timeoutS: 1 })
  writeFileSync(lock, JSON.stringify(owner()))
  const r = await startWorker(job).done
  t.equal(r.status, 1)
  t.equal(r.result.error?.code, 'CACHE')
  t.equal(r.result.error?.message, `Timed out after 1 s waiting for cache lock ${lock} held by pid 4242 on node-elsewhere (uid 1) since 2026-01-01T00:00:00.000Z`)
  t.same(calls(log), [])
  t.ok(existsSync(lock), 'someone else\'s lock is left alone')
})

t.test('a lock whose holder on this host has exited is taken over at once', async t => {
  const { job, lock, log } = setup(t as unknown as T, { staleS: 300 })
  const gone = spawnSync('sh', ['-c', 'echo $$']).stdout.toString().trim()
  const here = { host: hostname(), bootId: readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(), pidns: (await import('node:fs')).readlinkSync('/proc/self/ns/pid') }
  writeFileSync(lock, JSON.stringify(owner({ ...here, pid: Number(gone) })))
  const started = Date.now()
  const r = await startWorker(job).done
  t.equal(r.status, 0, 'exits 0', { stderr: r.stderr })
  t.ok(Date.now() - started < 10_000, 'no wait for ENROOT_LOCK_STALE (300 s)')
  t.match(r.stderr, /process gone/)
  t.equal(calls(log).length, 1)
})

t.test('a live pid whose start time differs from the recorded one is a reused pid: the owner is dead', async t => {
  const base = { host: hostname(), bootId: readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(), pidns: (await import('node:fs')).readlinkSync('/proc/self/ns/pid') }
  const myStart = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]?.split(' ')[19] ?? ''
  t.notOk(ownerIsDeadHere(owner({ ...base, pid: process.pid, pidStart: myStart })), 'this very process is alive')
  t.ok(ownerIsDeadHere(owner({ ...base, pid: process.pid, pidStart: '1' })), 'same pid, other start time')
  t.notOk(ownerIsDeadHere(owner({ ...base, host: 'node-elsewhere', pid: 999999 })), 'a pid on another host is never judged')
  t.notOk(ownerIsDeadHere(owner({ ...base, pidns: 'pid:[0]', pid: 999999 })), 'nor one in another pid namespace')
})

t.test('a waiter in the same process gets the published result instead of the lock', async t => {
  const dir = userTmp(t as unknown as T)
  const lock = join(dir, 'x.lock')
  let result: string | undefined
  const first = await acquire(lock, { timeoutS: 10, staleS: 5, done: async () => result })
  t.equal(first.kind, 'held')
  const second = acquire(lock, { timeoutS: 10, staleS: 5, done: async () => result })
  await sleep(100)
  result = 'published'
  if (first.kind === 'held') await first.lock.release()
  t.same(await second, { kind: 'done', value: 'published' })
  t.notOk(existsSync(lock))
})

t.test('a lock replaced after it was judged stale is put back, not deleted (two takers)', async t => {
  const dir = userTmp(t as unknown as T)
  const lock = join(dir, 'x.lock')
  writeFileSync(lock, JSON.stringify(owner({ nonce: 'aaaaaaaaaaaaaaaa' })))
  const judged = observe(lock)
  // Meanwhile another taker removed that stale lock and created its own, fresh one.
  rmSync(lock)
  writeFileSync(lock, JSON.stringify(owner({ nonce: 'bbbbbbbbbbbbbbbb' })))
  t.notOk(removeLockIf(lock, o => o.owner?.nonce === judged?.owner?.nonce && o.ino === judged?.ino && o.mtimeMs === judged?.mtimeMs), 'not removed')
  t.equal(observe(lock)?.owner?.nonce, 'bbbbbbbbbbbbbbbb', 'the fresh lock is back in place')
  t.same(readdirSync(dir), ['x.lock'], 'nothing left aside')
  t.ok(removeLockIf(lock, o => o.owner?.nonce === 'bbbbbbbbbbbbbbbb'), 'the expected lock is removed')
  t.notOk(existsSync(lock))
})
