// 10-localtime: the container follows the host's time zone. enroot copies the host symlink (and the zone
// file) into the rootfs; we bind the host's zone file read-only over /etc/localtime instead, so a shared or
// read-only rootfs is never written at start (user-pain 4 and 31). `date` and libc see the same zone; a
// program that reads the zone *name* from the symlink text sees the image's name.
import { lstatSync, realpathSync } from 'node:fs'
import type { HookContext, HookOutput } from './types.js'
import { emptyOutput } from './types.js'
import { fstabOps, escapeField } from './util.js'

export function localtimeLines (hostLocaltime = '/etc/localtime'): string[] {
  try {
    if (!lstatSync(hostLocaltime).isSymbolicLink()) return []
    const zone = realpathSync(hostLocaltime)
    return [`${escapeField(zone)} /etc/localtime none x-create=file,bind,ro,nosuid,nodev,noexec,nofail,silent`]
  } catch {
    return []
  }
}

export function localtime (_ctx: HookContext): HookOutput {
  const out = emptyOutput()
  out.fstab = fstabOps(localtimeLines(), 'hooks.d/10-localtime.sh')
  return out
}
