// 10-cgroups: the container sees its own cgroup subtree read-only at each controller's mount point
// (one level up with SLURM_STEP_ID, so a Slurm step sees its step cgroup), and /sys/fs/cgroup read-only.
// Handles v1 (one mount per controller set), v2 (one cgroup2 mount) and hybrid hosts (both, v2 usually at
// /sys/fs/cgroup/unified).
import { join } from 'node:path'
import type { HookContext, HookOutput } from './types.js'
import { emptyOutput } from './types.js'
import { fstabOps, readText, escapeField } from './util.js'
import { unescapeField } from '../fstab.js'

interface MountInfo { root: string, mountPoint: string, fstype: string, superOptions: string[] }

export function parseMountInfo (text: string): MountInfo[] {
  const out: MountInfo[] = []
  for (const line of text.split('\n')) {
    const sep = line.indexOf(' - ')
    if (sep === -1) continue
    const left = line.slice(0, sep).split(' ')
    const right = line.slice(sep + 3).split(' ')
    out.push({ root: unescapeField(left[3] ?? ''), mountPoint: unescapeField(left[4] ?? ''), fstype: right[0] ?? '', superOptions: (right[2] ?? '').split(',') })
  }
  return out
}

/**
 * The fstab lines 10-cgroups would emit for /proc/self/cgroup and /proc/self/mountinfo. freshSysfs: the
 * container got its own sysfs (--net), where /sys/fs/cgroup is an empty directory of sysfs in which no
 * controller directory can be created; on v1 and hybrid hosts (/sys/fs/cgroup a tmpfs) a tmpfs is put
 * there first so that each controller's mount point can be made.
 */
export function cgroupLines (procCgroup: string, mountinfo: string, slurmStep: boolean, freshSysfs = false): string[] {
  const mounts = parseMountInfo(mountinfo)
  const lines: string[] = []
  if (freshSysfs && mounts.some(mi => mi.mountPoint === '/sys/fs/cgroup' && mi.fstype === 'tmpfs')) {
    lines.push('tmpfs /sys/fs/cgroup tmpfs x-create=dir,mode=755,nosuid,noexec,nodev')
  }
  for (const line of procCgroup.split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line)
    if (m === null) continue
    const ctrl = m[2] as string
    const path = m[3] as string
    const found = ctrl === ''
      ? mounts.find(mi => mi.fstype === 'cgroup2')
      : mounts.find(mi => mi.fstype === 'cgroup' && ctrl.split(',').every(c => mi.superOptions.includes(c)))
    if (found === undefined) continue
    const rel = found.root !== '/' && path.startsWith(found.root) ? path.slice(found.root.length) : path
    let source = join(found.mountPoint, rel).replace(/(.)\/+$/, '$1')
    if (slurmStep) source = join(source, '..')
    lines.push(`${escapeField(source)} ${escapeField(found.mountPoint)} none x-create=dir,rbind,nosuid,noexec,nodev,ro`)
  }
  lines.push('none /sys/fs/cgroup none rbind,remount,nosuid,noexec,nodev,ro,rslave,nofail,silent')
  return lines
}

export function cgroups (ctx: HookContext): HookOutput {
  const out = emptyOutput()
  const lines = cgroupLines(readText('/proc/self/cgroup') ?? '', readText('/proc/self/mountinfo') ?? '',
    (ctx.env.SLURM_STEP_ID ?? '') !== '', (ctx.env.ENROOT_UNSHARE_NET ?? '') !== '')
  out.mount = fstabOps(lines, 'hooks.d/10-cgroups.sh')
  return out
}
