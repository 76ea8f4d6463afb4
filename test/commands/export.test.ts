import t from 'tap'
import { writeFileSync, mkdirSync, chmodSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { execFileSync } from 'node:child_process'
import { enroot, enrootEnv, userTmp, runAsUser } from '../helpers/env.js'
import { busyboxImage, errorLine } from './fixtures.js'

t.test('export round-trip: placeholders, /dev contents, /.lock and /.enroot are left out', async t => {
  const dir = userTmp(t)
  const env = enrootEnv(dir)
  t.equal((await enroot(['create', '-n', 'c', busyboxImage(dir)], env)).status, 0)
  // The state a start leaves behind, made as the test user (who owns the rootfs).
  const rootfs = join(dir, 'data', 'c')
  const script = `set -e; cd ${rootfs}
    touch .lock; mkdir .enroot; touch dev/null dev/keepme; mkdir -p mnt/place data
    touch etc/hostname; chmod 0000 etc/hostname mnt/place
    echo kept > data/file; touch data/empty0; chmod 0000 data/empty0
    echo content > data/secret; chmod 0000 data/secret`
  t.equal((await runAsUser('sh', ['-c', script])).status, 0)
  const out = join(dir, 'c.sqsh')
  const r = await enroot(['export', '-o', out, 'c'], env)
  t.equal(r.status, 0, 'exits 0', { stderr: r.stderr })
  t.match(r.stderr, /\[INFO\] Creating squashfs filesystem\.\.\./)
  const listing = execFileSync('unsquashfs', ['-lls', out], { encoding: 'utf8' })
  const paths = listing.split('\n').filter(l => l.includes('squashfs-root')).map(l => l.slice(l.indexOf('squashfs-root') + 'squashfs-root'.length))
  for (const gone of ['/.lock', '/.enroot', '/dev/null', '/dev/keepme', '/etc/hostname', '/mnt/place', '/data/empty0']) t.notOk(paths.includes(gone), `${gone} is excluded`)
  for (const kept of ['/dev', '/mnt', '/bin/busybox', '/data/file', '/data/secret']) t.ok(paths.includes(kept), `${kept} is kept`)
  t.notMatch(listing, /enroot-test/, 'ownership is flattened to root')
  chmodSync(out, 0o644)
})

t.test('the output defaults to NAME.sqsh in the current directory; an existing one needs --force', async t => {
  const dir = userTmp(t)
  const env = enrootEnv(dir)
  t.equal((await enroot(['create', '-n', 'c', busyboxImage(dir)], env)).status, 0)
  t.equal((await enroot(['export', 'c'], env, { cwd: dir })).status, 0)
  t.ok(existsSync(join(dir, 'c.sqsh')))
  const again = await enroot(['export', 'c'], env, { cwd: dir })
  t.same([again.status, errorLine(again)], [1, `[ERROR] File already exists: ${join(dir, 'c.sqsh')}`])
  t.equal((await enroot(['export', '--force', 'c'], env, { cwd: dir })).status, 0)
  t.equal((await enroot(['export', 'c'], { ...env, ENROOT_FORCE_OVERRIDE: 'y' }, { cwd: dir })).status, 0)
})

t.test('export of a missing or badly named container fails', async t => {
  const dir = userTmp(t)
  const env = enrootEnv(dir)
  const missing = await enroot(['export', 'nope'], env, { cwd: dir })
  t.same([missing.status, errorLine(missing)], [1, `[ERROR] No such file or directory: ${join(dir, 'data', 'nope')}`])
  const bad = await enroot(['export', 'a/b'], env, { cwd: dir })
  t.same([bad.status, errorLine(bad)], [1, '[ERROR] Invalid argument: a/b'])
})

t.test('--force never deletes a directory in the way', async t => {
  const dir = userTmp(t)
  const env = enrootEnv(dir)
  t.equal((await enroot(['create', '-n', 'c', busyboxImage(dir)], env)).status, 0)
  mkdirSync(join(dir, 'x.sqsh'))
  writeFileSync(join(dir, 'x.sqsh', 'f'), '')
  const r = await enroot(['export', '-f', '-o', join(dir, 'x.sqsh'), 'c'], env)
  t.equal(r.status, 1)
  t.ok(existsSync(join(dir, 'x.sqsh', 'f')))
})
