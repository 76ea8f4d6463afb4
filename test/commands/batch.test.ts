import t from 'tap'
import { writeFileSync, mkdirSync, chownSync } from 'node:fs'
import { join } from 'node:path'
import { enroot, enrootEnv, userTmp, IS_ROOT, testUser } from '../helpers/env.js'
import { errorLine } from './fixtures.js'

t.test('batch needs the ENROOT_ROOTFS directive', async t => {
  const dir = userTmp(t)
  const conf = join(dir, 'job.batch')
  writeFileSync(conf, '#! /usr/bin/enroot batch\n#ENROOT_REMAP_ROOT=y\nenviron() { :; }\n')
  const r = await enroot(['batch', conf], enrootEnv(dir))
  t.same([r.status, errorLine(r)], [1, `[ERROR] Missing directive ENROOT_ROOTFS in ${conf}`])
})

t.test('batch of a missing file, or one with a syntax error', async t => {
  const dir = userTmp(t)
  const missing = await enroot(['batch', join(dir, 'nope')], enrootEnv(dir))
  t.same([missing.status, errorLine(missing)], [1, `[ERROR] No such file or directory: ${join(dir, 'nope')}`])
  const bad = join(dir, 'bad')
  writeFileSync(bad, '#ENROOT_ROOTFS=x\nif then\n')
  const r = await enroot(['batch', bad], enrootEnv(dir))
  t.equal(r.status, 1)
  t.match(r.stderr, /\[WARN\] .*syntax error/)
  t.equal(errorLine(r), `[ERROR] Invalid argument: ${bad}`)
})

t.test('batch starts the directive\'s rootfs: a missing container is reported by path', async t => {
  const dir = userTmp(t)
  const conf = join(dir, 'job')
  writeFileSync(conf, '#ENROOT_ROOTFS=absent\n')
  const r = await enroot(['batch', conf, 'true'], enrootEnv(dir))
  t.same([r.status, errorLine(r)], [1, `[ERROR] No such file or directory: ${join(dir, 'data', 'absent')}`])
  const sub = join(dir, 'data', 'present')
  mkdirSync(sub)
  if (IS_ROOT) chownSync(sub, testUser().uid, testUser().gid)
  writeFileSync(conf, '#ENROOT_ROOTFS=present\n')
  const ok = await enroot(['batch', conf, 'true'], enrootEnv(dir))
  t.not(errorLine(ok) ?? '', `[ERROR] No such file or directory: ${sub}`, 'the plan is built (the engine decides the rest)')
})
