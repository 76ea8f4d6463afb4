import t from 'tap'
import { mkdtempSync, mkdirSync, writeFileSync, chmodSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { shadowFiles, pickShell, parseDefs, shadow } from '../../../launcher/src/pipeline/builtin-hooks/shadow.js'
import { MS } from '../../../launcher/src/pipeline/fstab.js'

const user = { name: 'alice', uid: 1234, gid: 100, gecos: 'Alice A', home: '/home/alice', shell: '/bin/bash' }

t.test('root, nobody and the caller come first; duplicates and _apt (on Debian) go', async t => {
  const out = shadowFiles({
    imagePasswd: 'root:x:0:0:root:/root:/bin/ash\n_apt:x:42:65534::/nonexistent:/usr/sbin/nologin\ndaemon:x:1:1::/:/bin/false\nalice:x:9:9::/x:/bin/sh\n',
    imageGroup: 'root:x:0:\nusers:x:100:\n_apt:x:42:\nwheel:x:10:root\n',
    debian: true, user, group: { name: 'users', gid: 100 }, shell: '/bin/bash', overflowUid: 65534, overflowGid: 65534
  })
  t.equal(out.passwd, 'root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/:/sbin/nologin\nalice:x:1234:100:Alice A:/home/alice:/bin/bash\ndaemon:x:1:1::/:/bin/false\n')
  t.equal(out.group, 'root:x:0:\nnogroup:x:65534:\nusers:x:100:\nwheel:x:10:root\n')
})

t.test('_apt stays on non-Debian images', async t => {
  const out = shadowFiles({ imagePasswd: '_apt:x:42:65534::/:/bin/false\n', imageGroup: '', debian: false, user, group: { name: 'u', gid: 100 }, shell: '/bin/sh', overflowUid: 65534, overflowGid: 65534 })
  t.match(out.passwd, /\n_apt:x:42:/)
})

t.test('shell: the host shell when the image has it, else useradd SHELL, else /bin/sh', async t => {
  const root = mkdtempSync(join(tmpdir(), 'enroot-shadow-'))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  mkdirSync(join(root, 'bin'))
  writeFileSync(join(root, 'bin', 'bash'), '')
  chmodSync(join(root, 'bin', 'bash'), 0o755)
  t.equal(pickShell(root, '/bin/bash', '/bin/zsh'), '/bin/bash')
  t.equal(pickShell(root, '/usr/bin/fish', '/bin/zsh'), '/bin/zsh')
  t.equal(pickShell(root, '/usr/bin/fish', undefined), '/bin/sh')
  t.same(parseDefs('# c\nUMASK\t\t022\nSHELL=/bin/zsh\n  CREATE_HOME yes\n'), { UMASK: '022', SHELL: '/bin/zsh', CREATE_HOME: 'yes' })
})

t.test('files go to the runtime dir and are bound over the image\'s; --rw writes the rootfs instead', async t => {
  const root = mkdtempSync(join(tmpdir(), 'enroot-shadow-'))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  mkdirSync(join(root, 'etc'))
  writeFileSync(join(root, 'etc', 'passwd'), 'daemon:x:1:1::/:/bin/false\n')
  writeFileSync(join(root, 'etc', 'login.defs'), 'UMASK 022\n')
  const ctx = { rootfs: root, runtimeDir: '/run/enroot/7', env: {}, environ: [], uid: 0, gid: 0 }
  const out = shadow(ctx)
  t.same(out.files.map(f => [f.path, f.inRootfs]), [['/run/enroot/7/passwd', false], ['/run/enroot/7/group', false]])
  t.match(out.files[0]?.content, /^root:x:0:0:root:\/root:\/bin\/sh\nnobody:x:\d+:\d+:nobody:\/:\/sbin\/nologin\n/)
  t.same(out.mount.map(o => [o.source, o.target, o.create, o.flags]), [
    ['/run/enroot/7/passwd', '/etc/passwd', 'file', MS.BIND | MS.NOSUID | MS.NODEV | MS.NOEXEC],
    ['/run/enroot/7/group', '/etc/group', 'file', MS.BIND | MS.NOSUID | MS.NODEV | MS.NOEXEC]
  ], 'writable while the later hooks run')
  t.same(out.fstab.map(o => [o.target, o.flags]), [
    ['/etc/passwd', MS.REMOUNT | MS.BIND | MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC],
    ['/etc/group', MS.REMOUNT | MS.BIND | MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC]
  ], 'read-only for the container')
  t.same(out.dirs, [{ path: '/root', mode: 0o755 }])
  const rw = shadow({ ...ctx, env: { ENROOT_ROOTFS_WRITABLE: 'y' } })
  t.same(rw.files.map(f => [f.path, f.inRootfs]), [['/etc/passwd', true], ['/etc/group', true]])
  t.same(rw.mount, [])
})
