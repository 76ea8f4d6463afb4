import t from 'tap'
import { mkdtempSync, statSync, writeFileSync, mkdirSync, chownSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { makeDirs, makeDirsAsync } from '../../launcher/src/util/fs.js'
import { enroot, enrootEnv, userTmp, IS_ROOT, testUser } from '../helpers/env.js'

t.test('creates every missing component with the mode asked for and accepts existing ones', async t => {
  const base = mkdtempSync(join(tmpdir(), 'enroot-fs-'))
  makeDirs(join(base, 'a', 'b'), 0o700)
  t.equal(statSync(join(base, 'a', 'b')).mode & 0o777, 0o700)
  makeDirs(join(base, 'a', 'b'), 0o700)
  await makeDirsAsync(join(base, 'a', 'c'), 0o700)
  t.ok(statSync(join(base, 'a', 'c')).isDirectory())
})

t.test('a path under /proc fails at once with the path named (node\'s recursive mkdir never returns there)', async t => {
  t.throws(() => makeDirs('/proc/enroot-x/y'), { code: 'SYSCALL', message: 'Could not create directory: /proc/enroot-x: No such file or directory' })
  await t.rejects(makeDirsAsync('/proc/enroot-x/y'), { code: 'SYSCALL' })
})

t.test('a file in the way is "Not a directory"', async t => {
  const base = mkdtempSync(join(tmpdir(), 'enroot-fs-'))
  writeFileSync(join(base, 'f'), '')
  t.throws(() => makeDirs(join(base, 'f', 'x')), { message: `Could not create directory: ${join(base, 'f')}: Not a directory` })
})

t.test('start with a runtime path the user cannot create fails with one line and status 1', async t => {
  const dir = userTmp(t)
  const env = enrootEnv(dir)
  mkdirSync(join(env.ENROOT_DATA_PATH as string, 'c'))
  if (IS_ROOT) chownSync(join(env.ENROOT_DATA_PATH as string, 'c'), testUser().uid, testUser().gid)
  for (const [rp, why] of [['/root/enroot-denied', 'Permission denied'], ['/proc/enroot-x', 'No such file or directory']]) {
    const r = await enroot(['start', 'c', 'true'], { ...env, ENROOT_RUNTIME_PATH: rp as string })
    t.equal(r.status, 1, rp)
    t.match(r.stderr, `[ERROR] Could not create directory: ${rp}: ${why}\n`)
    t.notMatch(r.stderr, /Internal error|\n {4}at /, 'no stack')
  }
})
