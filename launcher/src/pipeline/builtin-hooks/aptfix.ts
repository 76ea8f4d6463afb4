// 10-aptfix: under --root on a Debian image, tell apt not to drop privileges to _apt (which cannot work
// with one mapped id). The file is generated in the runtime directory and bound in, unless the rootfs is
// writable, where it is written as enroot does.
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import type { HookContext, HookOutput } from './types.js'
import { emptyOutput, flag } from './types.js'
import { fstabOps, escapeField } from './util.js'

export const APT_CONF = 'APT::Sandbox::User "root";\n'
const TARGET = '/etc/apt/apt.conf.d/enroot'

export function aptfix (ctx: HookContext): HookOutput {
  const out = emptyOutput()
  if (!flag(ctx.env, 'ENROOT_REMAP_ROOT') || !existsSync(join(ctx.rootfs, 'etc', 'debian_version'))) return out
  if (flag(ctx.env, 'ENROOT_ROOTFS_WRITABLE')) {
    out.files = [{ path: TARGET, inRootfs: true, content: APT_CONF, mode: 0o644 }]
    return out
  }
  const file = join(ctx.runtimeDir, 'apt-enroot.conf')
  out.files = [{ path: file, inRootfs: false, content: APT_CONF, mode: 0o644 }]
  out.mount = fstabOps([`${escapeField(file)} ${TARGET} none x-create=file,bind,ro,nosuid,nodev,noexec`], 'hooks.d/10-aptfix.sh')
  return out
}
