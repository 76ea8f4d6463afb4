import t from 'tap'
import { devices, deviceLines } from '../../../launcher/src/pipeline/builtin-hooks/devices.js'

const ctx = (env: Record<string, string>, stdinTty?: string) => ({ rootfs: '/r', runtimeDir: '/run/x', env, environ: [], uid: 1000, gid: 1000, ...(stdinTty === undefined ? {} : { stdinTty }) })

t.test('does nothing unless ENROOT_RESTRICT_DEV or ENROOT_UNSHARE_IPC', async t => {
  t.same(devices(ctx({})), { environ: [], files: [], dirs: [], links: [], mount: [], fstab: [] })
})

t.test('a restricted /dev: a fresh directory, the six devices, devpts, host shm and mqueue', async t => {
  const out = devices(ctx({ ENROOT_RESTRICT_DEV: 'y' }))
  t.same(out.mount.map(o => [o.source, o.target, o.fstype]), [
    ['none', '/dev', 'none'], ['/run/x/dev', '/dev', 'none'],
    ['/dev/zero', '/dev/zero', 'none'], ['/dev/null', '/dev/null', 'none'], ['/dev/full', '/dev/full', 'none'],
    ['/dev/urandom', '/dev/urandom', 'none'], ['/dev/random', '/dev/random', 'none'], ['/dev/tty', '/dev/tty', 'none'],
    ['devpts', '/dev/pts', 'devpts'], ['/dev/shm', '/dev/shm', 'none'], ['/dev/mqueue', '/dev/mqueue', 'none'],
    ['/dev/hugepages', '/dev/hugepages', 'none'], ['/dev/log', '/dev/log', 'none']
  ])
  t.ok(out.mount[0]?.detach)
  t.equal(out.mount[8]?.data, 'newinstance,ptmxmode=0666,mode=620')
  t.same(out.links, [
    { path: '/run/x/dev/fd', target: '/proc/self/fd' }, { path: '/run/x/dev/stdin', target: '/proc/self/fd/0' },
    { path: '/run/x/dev/stdout', target: '/proc/self/fd/1' }, { path: '/run/x/dev/stderr', target: '/proc/self/fd/2' },
    { path: '/run/x/dev/ptmx', target: 'pts/ptmx' }
  ])
})

t.test('--ipc gives a private /dev/shm and mqueue; a terminal on stdin becomes /dev/console', async t => {
  const lines = deviceLines('/run/x/dev', true, '/dev/pts/3')
  t.ok(lines.includes('tmpfs /dev/shm tmpfs x-create=dir,rw,nosuid,nodev,noexec,mode=1777'))
  t.ok(lines.includes('mqueue /dev/mqueue mqueue x-create=dir,rw,nosuid,nodev,noexec'))
  t.equal(lines.at(-1), '/dev/pts/3 /dev/console none x-create=file,bind,rw,nosuid,noexec')
  t.ok(devices(ctx({ ENROOT_UNSHARE_IPC: 'y' })).mount.length > 0)
})
