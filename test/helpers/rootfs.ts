// Test root filesystems from Debian's busybox-static: /bin/busybox plus one symlink per applet, a
// passwd/group naming the test user, and the usual mount points. Squashed with mksquashfs for image tests.
import { execFileSync } from 'node:child_process'
import { chownSync, copyFileSync, existsSync, lchownSync, mkdirSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { IS_ROOT, testUser } from './env.js'

export const BUSYBOX = '/bin/busybox'
export const HAVE_BUSYBOX = existsSync(BUSYBOX) && (() => {
  try { return execFileSync('ldd', [BUSYBOX], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).includes('not a dynamic') } catch { return true }
})()
export const HAVE_MKSQUASHFS = existsSync('/usr/bin/mksquashfs')
export const HAVE_SQUASHFUSE = existsSync('/usr/bin/squashfuse')

let applets: string[] | undefined

export interface RootfsOptions {
  /** chown the tree to this uid/gid (default: the test user when the suite is root) */
  owner?: { uid: number, gid: number }
  /** extra files: path inside the rootfs → content */
  files?: Record<string, string>
}

function chownTree (dir: string, uid: number, gid: number): void {
  lchownSync(dir, uid, gid)
  if (!statSync(dir).isDirectory()) return
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) chownTree(p, uid, gid)
    else lchownSync(p, uid, gid)
  }
}

/** A busybox rootfs at dir (created). */
export function buildRootfs (dir: string, opts: RootfsOptions = {}): string {
  applets ??= execFileSync(BUSYBOX, ['--list'], { encoding: 'utf8' }).split('\n').filter(a => a !== '' && a !== 'busybox')
  for (const d of ['bin', 'etc', 'proc', 'dev', 'sys', 'tmp', 'root', 'home', 'var', 'usr/bin']) mkdirSync(join(dir, d), { recursive: true })
  copyFileSync(BUSYBOX, join(dir, 'bin', 'busybox'))
  for (const a of applets) {
    const p = join(dir, 'bin', a)
    if (!existsSync(p)) symlinkSync('busybox', p)
  }
  const u = IS_ROOT ? testUser() : { name: 'user', uid: process.getuid?.() ?? 1000, gid: process.getgid?.() ?? 1000, home: '/root' }
  writeFileSync(join(dir, 'etc', 'passwd'), `root:x:0:0:root:/root:/bin/sh\n${u.name}:x:${u.uid}:${u.gid}::/tmp:/bin/sh\n`)
  writeFileSync(join(dir, 'etc', 'group'), `root:x:0:\n${u.name}:x:${u.gid}:\n`)
  for (const [p, c] of Object.entries(opts.files ?? {})) {
    mkdirSync(join(dir, p, '..'), { recursive: true })
    writeFileSync(join(dir, p), c)
  }
  const owner = opts.owner ?? (IS_ROOT ? { uid: u.uid, gid: u.gid } : undefined)
  if (owner !== undefined && IS_ROOT) chownTree(dir, owner.uid, owner.gid)
  return dir
}

/** Squash a rootfs directory into an image file readable by the test user. */
export function squashRootfs (dir: string, image: string): string {
  execFileSync('mksquashfs', [dir, image, '-noappend', '-quiet', '-no-progress', '-comp', 'gzip'], { stdio: 'ignore' })
  if (IS_ROOT) { const u = testUser(); chownSync(image, u.uid, u.gid) }
  return image
}
