// 10-home: with ENROOT_MOUNT_HOME, bind the caller's home (at /root when remapped to root) and set HOME.
import type { HookContext, HookOutput } from './types.js'
import { emptyOutput, flag } from './types.js'
import { fstabOps, escapeField } from './util.js'
import { lookupUser } from './passwd.js'
import { EnrootError } from '../../util/errors.js'

export function home (ctx: HookContext): HookOutput {
  const out = emptyOutput()
  if (!flag(ctx.env, 'ENROOT_MOUNT_HOME')) return out
  const dir = (ctx.env.HOME ?? '') !== '' ? ctx.env.HOME as string : lookupUser(ctx.uid)?.home ?? ''
  if (dir === '') throw new EnrootError('HOOK', 'Could not find the home directory of the current user', { hint: 'Set HOME or unset ENROOT_MOUNT_HOME.' })
  const inside = flag(ctx.env, 'ENROOT_REMAP_ROOT') ? '/root' : dir
  out.fstab = fstabOps([`${escapeField(dir)} ${escapeField(inside)} none x-create=dir,bind,rw,nosuid`], 'hooks.d/10-home.sh')
  out.environ = [`HOME=${inside}`]
  return out
}
