import t from 'tap'
import { existsSync, writeFileSync, statSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { enroot, enrootEnv, userTmp } from '../helpers/env.js'
import { busyboxImage, errorLine } from './fixtures.js'

t.test('creates a container named after the image without .sqsh', async t => {
  const dir = userTmp(t)
  const env = enrootEnv(dir)
  const image = busyboxImage(dir)
  const r = await enroot(['create', image], env)
  t.equal(r.status, 0, 'exits 0', { stderr: r.stderr })
  t.match(r.stderr, /\[INFO\] Extracting squashfs filesystem\.\.\./)
  t.equal(r.stdout, '', 'unsquashfs output stays off stdout')
  t.ok(statSync(join(dir, 'data', 'busybox', 'bin', 'busybox')).isFile())
  t.ok((statSync(join(dir, 'data', 'busybox', 'etc')).mode & 0o700) === 0o700, 'fixperms gives the owner rwx on directories')
})

t.test('an existing container is File already exists, unless --force or ENROOT_FORCE_OVERRIDE', async t => {
  const dir = userTmp(t)
  const env = enrootEnv(dir)
  const image = busyboxImage(dir)
  t.equal((await enroot(['create', '--name', 'x', image], env)).status, 0)
  const again = await enroot(['create', '-n', 'x', image], env)
  t.equal(again.status, 1)
  t.match(again.stderr, `[ERROR] File already exists: ${join(dir, 'data', 'x')}`)
  t.equal((await enroot(['create', '-f', '-n', 'x', image], env)).status, 0)
  t.equal((await enroot(['create', '-n', 'x', image], { ...env, ENROOT_FORCE_OVERRIDE: 'y' })).status, 0)
})

t.test('bad input: missing image, not a squashfs, bad names', async t => {
  const dir = userTmp(t)
  const env = enrootEnv(dir)
  const missing = await enroot(['create', join(dir, 'none.sqsh')], env)
  t.same([missing.status, errorLine(missing)], [1, `[ERROR] No such file or directory: ${join(dir, 'none.sqsh')}`])
  writeFileSync(join(dir, 'junk.sqsh'), 'not an image')
  const junk = await enroot(['create', join(dir, 'junk.sqsh')], env)
  t.same([junk.status, errorLine(junk)], [1, `[ERROR] Invalid image format: ${join(dir, 'junk.sqsh')}`])
  mkdirSync(join(dir, 'adir'))
  t.equal((await enroot(['create', join(dir, 'adir')], env)).status, 1, 'a directory is not an image')
  const image = busyboxImage(dir)
  for (const bad of ['a/b', '..', '.']) {
    const r = await enroot(['create', '-n', bad, image], env)
    t.same([r.status, errorLine(r)], [1, `[ERROR] Invalid argument: ${bad}`], bad)
  }
  t.notOk(existsSync(join(dir, 'data', 'a')))
})

t.test('only .sqsh is stripped from the default name', async t => {
  const dir = userTmp(t)
  const env = enrootEnv(dir)
  const image = busyboxImage(dir, 'tool.squashfs')
  t.equal((await enroot(['create', image], env)).status, 0)
  t.ok(existsSync(join(dir, 'data', 'tool.squashfs', 'bin')))
})

t.test('usage errors print the usage on stdout and exit 1', async t => {
  const r = await enroot(['create'], enrootEnv(userTmp(t)))
  t.equal(r.status, 1)
  t.match(r.stdout, /^Usage: enroot create/)
})
