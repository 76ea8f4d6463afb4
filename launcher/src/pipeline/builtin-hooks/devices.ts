// 10-devices: with ENROOT_RESTRICT_DEV or ENROOT_UNSHARE_IPC, replace the host /dev with a minimal one.
// enroot mounts a tmpfs on /dev and creates its symlinks there; we prepare the directory (with the
// symlinks) in the runtime directory and bind it, so the hook is plain data and nothing touches the rootfs.
// Deviation, on purpose: the /dev/log bind is nofail (enroot's is not, so a host without syslog could not
// start containers at all: spec §11.12).
import { join } from 'node:path'
import type { HookContext, HookOutput } from './types.js'
import { emptyOutput, flag } from './types.js'
import { fstabOps, escapeField } from './util.js'

export function deviceLines (devDir: string, ipc: boolean, stdinTty: string | undefined): string[] {
  const lines = [
    'none /dev none x-detach,nofail,silent',
    `${escapeField(devDir)} /dev none x-create=dir,bind,rw,nosuid,noexec`
  ]
  for (const d of ['zero', 'null', 'full', 'urandom', 'random', 'tty']) lines.push(`/dev/${d} /dev/${d} none x-create=file,bind,rw,nosuid,noexec`)
  lines.push('devpts /dev/pts devpts x-create=dir,rw,nosuid,noexec,newinstance,ptmxmode=0666,mode=620')
  if (ipc) {
    lines.push('tmpfs /dev/shm tmpfs x-create=dir,rw,nosuid,nodev,noexec,mode=1777')
    lines.push('mqueue /dev/mqueue mqueue x-create=dir,rw,nosuid,nodev,noexec')
  } else {
    lines.push('/dev/shm /dev/shm none x-create=dir,bind,rw,nosuid,nodev,noexec,rslave')
    lines.push('/dev/mqueue /dev/mqueue none x-create=dir,bind,rw,nosuid,nodev,noexec,rslave,nofail,silent')
  }
  lines.push('/dev/hugepages /dev/hugepages none x-create=dir,bind,rw,nosuid,nodev,noexec,nofail,silent')
  lines.push('/dev/log /dev/log none x-create=file,bind,rw,nosuid,nodev,noexec,nofail,silent')
  if (stdinTty !== undefined) lines.push(`${escapeField(stdinTty)} /dev/console none x-create=file,bind,rw,nosuid,noexec`)
  return lines
}

/** name in /dev → link text */
export const DEVICE_LINKS: ReadonlyArray<readonly [string, string]> = [
  ['fd', '/proc/self/fd'], ['stdin', '/proc/self/fd/0'], ['stdout', '/proc/self/fd/1'], ['stderr', '/proc/self/fd/2'], ['ptmx', 'pts/ptmx']
]

export function devices (ctx: HookContext): HookOutput {
  const out = emptyOutput()
  const ipc = flag(ctx.env, 'ENROOT_UNSHARE_IPC')
  if (!flag(ctx.env, 'ENROOT_RESTRICT_DEV') && !ipc) return out
  const devDir = join(ctx.runtimeDir, 'dev')
  out.links = DEVICE_LINKS.map(([name, target]) => ({ path: join(devDir, name), target }))
  out.mount = fstabOps(deviceLines(devDir, ipc, ctx.stdinTty), 'hooks.d/10-devices.sh')
  return out
}
