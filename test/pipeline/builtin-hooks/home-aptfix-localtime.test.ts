import t from 'tap'
import { mkdtempSync, mkdirSync, writeFileSync, symlinkSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { home } from '../../../launcher/src/pipeline/builtin-hooks/home.js'
import { aptfix, APT_CONF } from '../../../launcher/src/pipeline/builtin-hooks/aptfix.js'
import { localtimeLines } from '../../../launcher/src/pipeline/builtin-hooks/localtime.js'
import { runBuiltinHook } from '../../../launcher/src/pipeline/builtin-hooks/index.js'
import { emptyOutput } from '../../../launcher/src/pipeline/builtin-hooks/types.js'

const base = { rootfs: '/r', runtimeDir: '/run/x', environ: [], uid: 1000, gid: 1000 }

t.test('10-home binds $HOME at the same path, or at /root when remapped', async t => {
  t.same(home({ ...base, env: { HOME: '/h' } }).fstab, [])
  const plain = home({ ...base, env: { HOME: '/home/a b', ENROOT_MOUNT_HOME: 'y' } })
  t.same(plain.environ, ['HOME=/home/a b'])
  t.same(plain.fstab.map(o => [o.source, o.target, o.create]), [['/home/a b', '/home/a b', 'dir']])
  const remap = home({ ...base, env: { HOME: '/h', ENROOT_MOUNT_HOME: 'y', ENROOT_REMAP_ROOT: 'y' } })
  t.same([remap.environ, remap.fstab[0]?.target], [['HOME=/root'], '/root'])
})

t.test('10-aptfix only under --root on Debian images', async t => {
  const root = mkdtempSync(join(tmpdir(), 'enroot-aptfix-'))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  const ctx = { ...base, rootfs: root }
  t.same(aptfix({ ...ctx, env: { ENROOT_REMAP_ROOT: 'y' } }).files, [])
  mkdirSync(join(root, 'etc'))
  writeFileSync(join(root, 'etc', 'debian_version'), '12\n')
  t.same(aptfix({ ...ctx, env: {} }).files, [])
  const out = aptfix({ ...ctx, env: { ENROOT_REMAP_ROOT: 'y' } })
  t.same(out.files, [{ path: '/run/x/apt-enroot.conf', inRootfs: false, content: APT_CONF, mode: 0o644 }])
  t.same(out.mount.map(o => [o.source, o.target, o.create]), [['/run/x/apt-enroot.conf', '/etc/apt/apt.conf.d/enroot', 'file']])
})

t.test('10-localtime binds the host zone file when /etc/localtime is a symlink', async t => {
  const d = mkdtempSync(join(tmpdir(), 'enroot-tz-'))
  t.teardown(() => rmSync(d, { recursive: true, force: true }))
  writeFileSync(join(d, 'Zone'), 'TZif')
  symlinkSync(join(d, 'Zone'), join(d, 'localtime'))
  t.same(localtimeLines(join(d, 'localtime')), [`${join(d, 'Zone')} /etc/localtime none x-create=file,bind,ro,nosuid,nodev,noexec,nofail,silent`])
  t.same(localtimeLines(join(d, 'Zone')), [], 'a regular file is left alone')
  t.same(localtimeLines(join(d, 'missing')), [])
})

t.test('built-ins are found by name', async t => {
  t.same((await runBuiltinHook('home', { ...base, env: {} })).fstab, [])
  await t.rejects(runBuiltinHook('no-such-hook', { ...base, env: {} }))
  t.same(await runBuiltinHook('nvidia', { ...base, env: {}, environ: ['NVIDIA_VISIBLE_DEVICES=void'] }), emptyOutput(), 'a hardware hook with nothing to do is not even loaded')
})
