// Which cache directories may be trusted: the chain from / down must not be writable by other users,
// except sticky directories like /tmp whose next component must be yours or root's.
import t from 'tap'
import { mkdirSync, chmodSync, chownSync, mkdtempSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { checkCacheTrust } from '../../launcher/src/cache/trust.js'
import { IS_ROOT } from '../helpers/env.js'
import { EnrootError } from '../../launcher/src/util/errors.js'

const ME = process.getuid?.() ?? 0
const OTHER = 54321

function base (t: { teardown: (fn: () => void) => void }): string {
  const d = mkdtempSync(join(tmpdir(), 'enroot-trust-'))
  t.teardown(() => { rmSync(d, { recursive: true, force: true }) })
  return d
}

const ENTRY_DIRS = ['blobs', 'images', 'tmp', 'locks']

t.test('a private cache in a sticky /tmp is trusted, writable and not shared', async t => {
  const c = join(base(t), 'cache')
  mkdirSync(c, { mode: 0o700 })
  const a = checkCacheTrust(c, ME, ENTRY_DIRS)
  t.equal(a.writable, true)
  t.equal(a.shared, false)
  t.equal(a.rootMode, 0o700)
})

t.test('a cache readable by others is shared (outputs become copies)', async t => {
  const c = join(base(t), 'cache')
  mkdirSync(c); chmodSync(c, 0o755)
  t.equal(checkCacheTrust(c, ME, ENTRY_DIRS).shared, true)
})

t.test('a group-writable cache is refused, naming the directory and the fix', async t => {
  const c = join(base(t), 'cache')
  mkdirSync(c); chmodSync(c, 0o770)
  const err = t.throws(() => checkCacheTrust(c, ME, ENTRY_DIRS)) as EnrootError
  t.equal(err.code, 'CACHE')
  t.match(err.message, `Refusing to use cache directory: ${c} (writable by other users, mode 0770`)
  t.match(err.hint, `Fix: chmod go-w ${c}`)
})

t.test('a world-writable entry directory inside a good cache is refused', async t => {
  const c = join(base(t), 'cache')
  mkdirSync(join(c, 'images'), { recursive: true, mode: 0o700 })
  chmodSync(join(c, 'images'), 0o777)
  t.throws(() => checkCacheTrust(c, ME, ENTRY_DIRS), { code: 'CACHE', message: /images \(writable by other users/ })
})

t.test('a world-writable, non-sticky ancestor is refused: anyone could swap the cache', async t => {
  const b = base(t)
  const open = join(b, 'open')
  mkdirSync(join(open, 'cache'), { recursive: true, mode: 0o700 })
  chmodSync(open, 0o777)
  t.throws(() => checkCacheTrust(join(open, 'cache'), ME, ENTRY_DIRS), { code: 'CACHE', message: new RegExp(`${open} \\(writable by other users`) })
})

t.test('in a sticky directory, a cache owned by another user is refused (they could have planted it)', { skip: !IS_ROOT && 'needs root to chown' }, async t => {
  const b = base(t)
  const sticky = join(b, 'sticky')
  mkdirSync(join(sticky, 'cache'), { recursive: true, mode: 0o755 })
  chmodSync(sticky, 0o1777)
  chownSync(join(sticky, 'cache'), OTHER, OTHER)
  t.throws(() => checkCacheTrust(join(sticky, 'cache'), ME === 0 ? 1000 : ME, ENTRY_DIRS), { code: 'CACHE', message: /owned by another user/ })
  t.equal(checkCacheTrust(join(sticky, 'cache'), OTHER, ENTRY_DIRS).shared, true, 'its owner may use it')
})

t.test('a cache owned by a dedicated account under a safe parent is trusted, shared', { skip: !IS_ROOT && 'needs root to chown' }, async t => {
  const c = join(base(t), 'shared-cache')
  mkdirSync(c, { mode: 0o755 })
  chmodSync(c, 0o755)
  chownSync(c, OTHER, OTHER)
  const a = checkCacheTrust(c, 1000, ENTRY_DIRS)
  t.equal(a.shared, true)
  t.equal(a.ownerUid, OTHER)
})
