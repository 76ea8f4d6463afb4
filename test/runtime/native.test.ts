// The native boundary: the loader's places and error, the wire format, argument validation.
import t from 'tap'
import { join } from 'node:path'
import { REPO } from '../helpers/env.js'
import { EnrootError } from '../../launcher/src/util/errors.js'
import { closeSync, openSync, readFileSync } from 'node:fs'
import { addonCandidates, loadFrom, encodePhase1, encodePhase2, encodeBatch, decodeRecord, MSG_SIZE, TAG, spawnJoined } from '../../launcher/src/runtime/native.js'
import { callerNofile } from '../../launcher/src/runtime/engine.js'
import { fstab, needRuntime } from './harness.js'

t.test('the loader tries the package build, then ENROOT_LIBRARY_PATH, in order', async t => {
  t.same(addonCandidates({ ENROOT_LIBRARY_PATH: '/a::/b' }), [
    join(REPO, 'native', 'build', 'Release', 'enroot_native.node'), '/a/enroot_native.node', '/b/enroot_native.node'
  ])
})

t.test('a missing addon is one error naming every place tried and the fix', async t => {
  const err = (() => { try { loadFrom(['/nope/a.node', '/nope/b.node']); return undefined } catch (e) { return e } })()
  t.ok(err instanceof EnrootError)
  t.equal((err as EnrootError).code, 'UNSUPPORTED')
  t.match((err as EnrootError).message, /\/nope\/a\.node.*\n.*\/nope\/b\.node/s)
  t.equal((err as EnrootError).hint, 'Build it with: npm run build:native')
})

// A stand-in module (no real addon can be built with another ABI number in a test): an addon left from
// older sources is refused by name, with the rebuild command, instead of failing later on a missing function.
t.test('an addon built from older sources is refused with the fix', async t => {
  const dir = t.testdir({ 'old.cjs': 'module.exports = { abiVersion: 1 }\n' })
  const err = (() => { try { loadFrom([join(dir, 'old.cjs')]); return undefined } catch (e) { return e } })()
  t.ok(err instanceof EnrootError)
  t.match((err as EnrootError).message, /old\.cjs is out of date \(ABI 1, need 4\)/)
  t.equal((err as EnrootError).hint, 'Rebuild it with: npm run build:native')
})

t.test('the built addon loads', async t => {
  if (!needRuntime(t)) return
  const a = loadFrom(addonCandidates({}))
  t.equal(a.abiVersion, 4)
  const fd = openSync('/dev/null', 'r')
  try { t.equal(a.isTerminal(fd), false, '/dev/null is not a terminal') } finally { closeSync(fd) }
  const e = a.makeError(13, 18, '/r/x')
  t.equal(e.message, 'failed to resolve path: /r/x: Invalid cross-device link')
  t.equal(e.code, 'EXDEV')
  t.equal(e.errno, -18)
  t.equal(e.path, '/r/x')
})

t.test('records are 4-byte aligned tag/length/payload with NUL-terminated strings', async t => {
  const b = encodePhase1({ flags: 3, rootfs: { kind: 'dir', path: '/r' }, mntDir: '/m', squashfuse: '/s', innerUid: 0, innerGid: 0, earlyMounts: fstab('tmpfs /t tmpfs mode=0755\n') })
  t.equal(b.length % 4, 0)
  let off = 0
  const tags: number[] = []
  while (off < b.length) {
    tags.push(b.readUInt32LE(off))
    off += 8 + Math.ceil(b.readUInt32LE(off + 4) / 4) * 4
  }
  t.equal(off, b.length)
  t.same(tags, [TAG.FLAGS, TAG.CAPLAST, TAG.INNER_UID, TAG.INNER_GID, TAG.MNTDIR, TAG.SQUASHFUSE, TAG.ROOTFS_DIR, TAG.MOUNT])
  const p2 = encodePhase2({ mounts: [], env: ['A=1'], command: ['true'], rc: 'x' })
  t.equal(p2.readUInt32LE(0), p2.length - 4, 'phase 2 carries its length first')
  t.throws(() => encodePhase2({ mounts: [], env: ['A=\0'], command: [] }), { code: 'INVALID' })
})

t.test('status records decode', async t => {
  const b = Buffer.alloc(MSG_SIZE)
  b.writeUInt32LE('E'.charCodeAt(0), 0)
  b.writeInt32LE(16, 4)
  b.writeInt32LE(2, 8)
  b.write('/src at /dst', 16)
  t.same(decodeRecord(b), { type: 'E', step: 16, errno: 2, value: 0, path: '/src at /dst' })
})

t.test('spawnJoined validates its arguments before the addon', async t => {
  t.throws(() => spawnJoined({ pid: 0, argv: ['x'], env: [], namespaces: 0, seccomp: false, ambientCaps: false }), { code: 'INVALID' })
  t.throws(() => spawnJoined({ pid: 1, argv: [], env: [], namespaces: 0, seccomp: false, ambientCaps: false }), { code: 'INVALID' })
  t.throws(() => spawnJoined({ pid: 1, argv: ['x'], env: ['NOEQUALS'], namespaces: 0, seccomp: false, ambientCaps: false }), { code: 'INVALID' })
})

t.test('a mount batch is framed, starts with the BATCH record, and phase 1 carries NOFILE only when known', async t => {
  const b = encodeBatch(fstab('/a /b none bind\n'))
  t.equal(b.readUInt32LE(0), b.length - 4)
  t.same([b.readUInt32LE(4), b.readUInt32LE(8), b.readUInt32LE(12)], [TAG.BATCH, 4, 1])
  const tags = (buf: Buffer): number[] => {
    const out: number[] = []
    for (let off = 0; off < buf.length; off += 8 + Math.ceil(buf.readUInt32LE(off + 4) / 4) * 4) out.push(buf.readUInt32LE(off))
    return out
  }
  const base = { flags: 0, rootfs: { kind: 'dir' as const, path: '/r' }, mntDir: '/m', squashfuse: '/s', innerUid: 1, innerGid: 1, earlyMounts: [] }
  t.notOk(tags(encodePhase1(base)).includes(TAG.NOFILE))
  t.notOk(tags(encodePhase1({ ...base, nofile: 0 })).includes(TAG.NOFILE))
  t.ok(tags(encodePhase1({ ...base, nofile: 1024 })).includes(TAG.NOFILE))
})

t.test('the caller\'s RLIMIT_NOFILE soft limit is our parent\'s when its hard limit is ours', async t => {
  const limits = (pid: number): string[] | undefined => /^Max open files\s+(\S+)\s+(\S+)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'))?.slice(1)
  const self = limits(process.pid)
  const parent = limits(process.ppid)
  const n = callerNofile()
  if (self === undefined || parent === undefined || parent[1] !== self[1] || parent[0] === 'unlimited' || Number(parent[0]) >= Number(self[0])) t.equal(n, 0)
  else t.equal(n, Number(parent[0]))
  t.equal(callerNofile(999999999), 0, 'an unreadable parent changes nothing')
})
