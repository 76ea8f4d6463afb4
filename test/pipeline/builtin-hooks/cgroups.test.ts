import t from 'tap'
import { readFileSync } from 'node:fs'
import { cgroupLines, cgroups, parseMountInfo } from '../../../launcher/src/pipeline/builtin-hooks/cgroups.js'
import { MS } from '../../../launcher/src/pipeline/fstab.js'

const RO = 'x-create=dir,rbind,nosuid,noexec,nodev,ro'
const LAST = 'none /sys/fs/cgroup none rbind,remount,nosuid,noexec,nodev,ro,rslave,nofail,silent'

// The layout of this machine: v1 controllers plus cgroup2 at /sys/fs/cgroup/unified.
const HYBRID_MOUNTINFO = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
const HYBRID_CGROUP = `9:name=systemd:/
4:memory:/process_api/abc
1:cpu:/
0::/
`

t.test('hybrid host: each v1 controller and the unified hierarchy are bound read-only', async t => {
  t.same(cgroupLines(HYBRID_CGROUP, HYBRID_MOUNTINFO, false), [
    `/sys/fs/cgroup/systemd /sys/fs/cgroup/systemd none ${RO}`,
    `/sys/fs/cgroup/memory/process_api/abc /sys/fs/cgroup/memory none ${RO}`,
    `/sys/fs/cgroup/cpu /sys/fs/cgroup/cpu none ${RO}`,
    `/sys/fs/cgroup/unified /sys/fs/cgroup/unified none ${RO}`,
    LAST
  ])
})

t.test('a fresh sysfs (--net) on a hybrid host gets a tmpfs at /sys/fs/cgroup for the controller mount points', async t => {
  const lines = cgroupLines(HYBRID_CGROUP, HYBRID_MOUNTINFO, false, true)
  t.equal(lines[0], 'tmpfs /sys/fs/cgroup tmpfs x-create=dir,mode=755,nosuid,noexec,nodev')
  t.same(lines.slice(1), cgroupLines(HYBRID_CGROUP, HYBRID_MOUNTINFO, false))
  const v2 = '30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n'
  t.notMatch(cgroupLines('0::/\n', v2, false, true).join('\n'), /tmpfs/, 'not on a v2 host: sysfs has the mount point')
})

t.test('v2 host: the own subtree, one level up in a Slurm step', async t => {
  const mi = '30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n'
  const cg = '0::/system.slice/slurmstepd.scope/job_1/step_0/user/task_0\n'
  t.same(cgroupLines(cg, mi, false), [`/sys/fs/cgroup/system.slice/slurmstepd.scope/job_1/step_0/user/task_0 /sys/fs/cgroup none ${RO}`, LAST])
  t.same(cgroupLines(cg, mi, true), [`/sys/fs/cgroup/system.slice/slurmstepd.scope/job_1/step_0/user /sys/fs/cgroup none ${RO}`, LAST])
})

t.test('v1 host: combined controllers match their mount; a mount root inside a namespace is stripped', async t => {
  const mi = '25 24 0:22 /inner /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n'
  t.same(cgroupLines('3:cpu,cpuacct:/inner/job\n5:devices:/x\n', mi, false), [`/sys/fs/cgroup/cpu,cpuacct/job /sys/fs/cgroup/cpu,cpuacct none ${RO}`, LAST])
})

t.test('mountinfo escapes are decoded', async t => {
  t.equal(parseMountInfo('1 2 0:1 / /a\\040b rw - cgroup2 cgroup2 rw\n')[0]?.mountPoint, '/a b')
})

t.test('on this host, every bind targets a cgroup mount point and is read-only', async t => {
  const out = cgroups({ rootfs: '/nonexistent', runtimeDir: '/run/x', env: {}, environ: [], uid: 0, gid: 0 })
  const points = new Set(parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8')).filter(m => m.fstype.startsWith('cgroup')).map(m => m.mountPoint))
  const binds = out.mount.slice(0, -1)
  t.ok(binds.length > 0)
  for (const op of binds) {
    t.ok(points.has(op.target), op.target)
    t.equal(op.flags, MS.BIND | MS.REC | MS.NOSUID | MS.NOEXEC | MS.NODEV | MS.RDONLY)
  }
  t.same(out.mount.at(-1)?.target, '/sys/fs/cgroup')
  t.same([out.environ, out.files, out.fstab], [[], [], []])
})
