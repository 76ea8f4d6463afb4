// 10-shadow: /etc/passwd and /etc/group that know the caller: root, nobody and the caller's own entry
// first, then the image's entries (minus duplicates of those names, and minus _apt on Debian so apt does
// not try to drop privileges). enroot rewrites the files in the rootfs at every start; we generate them in
// the runtime directory and bind them read-only over the image's, so a shared or read-only rootfs is never
// written (user-pain 4 and 31). A writable (--rw) rootfs gets them written, as with enroot.
import { accessSync, constants, existsSync } from 'node:fs'
import { join } from 'node:path'
import type { HookContext, HookOutput } from './types.js'
import { emptyOutput, flag } from './types.js'
import { fstabOps, escapeField, readText } from './util.js'
import { lookupUser, lookupGroup, type PasswdEntry, type GroupEntry } from './passwd.js'
import { EnrootError } from '../../util/errors.js'

/** `KEY VALUE` (login.defs) or `KEY=VALUE` (default/useradd) settings. */
export function parseDefs (text: string | undefined): Record<string, string> {
  const out: Record<string, string> = {}
  for (const line of (text ?? '').split('\n')) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)[\s=]+(\S*)/.exec(line)
    if (m !== null) out[m[1] as string] = m[2] as string
  }
  return out
}

export interface ShadowInput {
  imagePasswd: string
  imageGroup: string
  debian: boolean
  user: PasswdEntry
  group: GroupEntry
  /** the login shell to use (resolved by pickShell) */
  shell: string
  overflowUid: number
  overflowGid: number
}

const keepImage = (text: string, names: ReadonlySet<string>): string[] =>
  text.split('\n').filter(l => l !== '' && !names.has(l.split(':')[0] ?? ''))

export function shadowFiles (i: ShadowInput): { passwd: string, group: string } {
  const users = [
    `root:x:0:0:root:/root:${i.shell}`,
    `nobody:x:${i.overflowUid}:${i.overflowGid}:nobody:/:/sbin/nologin`,
    `${i.user.name}:x:${i.user.uid}:${i.group.gid}:${i.user.gecos}:${i.user.home}:${i.shell}`
  ]
  const groups = ['root:x:0:', `nogroup:x:${i.overflowGid}:`, `${i.group.name}:x:${i.group.gid}:`]
  const drop = (first: string[]): Set<string> => {
    const s = new Set(first.map(l => l.split(':')[0] as string))
    if (i.debian) s.add('_apt')
    return s
  }
  const passwd = [...new Set([...users, ...keepImage(i.imagePasswd, drop(users))])]
  const group = [...new Set([...groups, ...keepImage(i.imageGroup, drop(groups))])]
  return { passwd: passwd.join('\n') + '\n', group: group.join('\n') + '\n' }
}

/** The host shell when the image has it, else useradd's SHELL, else /bin/sh. */
export function pickShell (rootfs: string, hostShell: string, useraddShell: string | undefined): string {
  try {
    if (hostShell !== '') { accessSync(join(rootfs, hostShell), constants.X_OK); return hostShell }
  } catch {}
  return useraddShell ?? '/bin/sh'
}

const readInt = (p: string, def: number): number => { const v = parseInt(readText(p) ?? '', 10); return Number.isNaN(v) ? def : v }

export function shadow (ctx: HookContext): HookOutput {
  const out = emptyOutput()
  const user = lookupUser(ctx.uid)
  if (user === undefined) throw new EnrootError('HOOK', `Could not find the passwd entry of uid ${ctx.uid}`)
  const group = lookupGroup(ctx.gid) ?? { name: user.name, gid: ctx.gid }
  const etc = (p: string): string => join(ctx.rootfs, 'etc', p)
  const loginDefs = parseDefs(readText(etc('login.defs')))
  const useradd = parseDefs(readText(etc('default/useradd')))
  const files = shadowFiles({
    imagePasswd: readText(etc('passwd')) ?? '',
    imageGroup: readText(etc('group')) ?? '',
    debian: existsSync(etc('debian_version')),
    user,
    group,
    shell: pickShell(ctx.rootfs, user.shell, useradd.SHELL),
    overflowUid: readInt('/proc/sys/kernel/overflowuid', 65534),
    overflowGid: readInt('/proc/sys/kernel/overflowgid', 65534)
  })
  if (flag(ctx.env, 'ENROOT_ROOTFS_WRITABLE')) {
    out.files = [
      { path: '/etc/passwd', inRootfs: true, content: files.passwd, mode: 0o644 },
      { path: '/etc/group', inRootfs: true, content: files.group, mode: 0o644 }
    ]
  } else {
    const p = join(ctx.runtimeDir, 'passwd')
    const g = join(ctx.runtimeDir, 'group')
    out.files = [
      { path: p, inRootfs: false, content: files.passwd, mode: 0o644 },
      { path: g, inRootfs: false, content: files.group, mode: 0o644 }
    ]
    // Bound writable at once, as enroot's hook wrote the files at once: later hooks read the new entries and
    // may add their own. Read-only for the container, after all hooks.
    out.mount = fstabOps([
      `${escapeField(p)} /etc/passwd none x-create=file,bind,rw,nosuid,nodev,noexec`,
      `${escapeField(g)} /etc/group none x-create=file,bind,rw,nosuid,nodev,noexec`
    ], 'hooks.d/10-shadow.sh')
    out.fstab = fstabOps([
      'none /etc/passwd none remount,bind,ro,nosuid,nodev,noexec',
      'none /etc/group none remount,bind,ro,nosuid,nodev,noexec'
    ], 'hooks.d/10-shadow.sh')
  }
  // The login emulation changes into $HOME and fails when it is missing (unless DEFAULT_HOME); the skeleton
  // and mail spool of enroot's hook are not copied.
  if (user.home !== '' && (loginDefs.CREATE_HOME ?? 'yes') !== 'no') {
    const umask = parseInt(loginDefs.UMASK ?? '077', 8)
    out.dirs = [{ path: user.home, mode: 0o777 & ~(Number.isNaN(umask) ? 0o077 : umask) }]
  }
  return out
}

