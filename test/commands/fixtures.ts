// A tiny busybox image for command tests: /bin/busybox (Debian's busybox-static) plus a few links and
// files, squashed with mksquashfs into a directory the test user owns.
import { mkdirSync, copyFileSync, symlinkSync, writeFileSync, chownSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { IS_ROOT, testUser } from '../helpers/env.js'

export function busyboxImage (dir: string, name = 'busybox.sqsh'): string {
  const src = join(dir, 'image-src')
  for (const d of ['bin', 'etc', 'tmp', 'dev']) mkdirSync(join(src, d), { recursive: true })
  copyFileSync('/bin/busybox', join(src, 'bin', 'busybox'))
  for (const l of ['sh', 'ls', 'cat', 'echo']) symlinkSync('busybox', join(src, 'bin', l))
  writeFileSync(join(src, 'etc', 'environment'), 'FROM_IMAGE=1\n')
  writeFileSync(join(src, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n')
  const out = join(dir, name)
  execFileSync('mksquashfs', [src, out, '-quiet', '-no-progress', '-noappend', '-all-root'], { stdio: 'ignore' })
  if (IS_ROOT) { const u = testUser(); chownSync(out, u.uid, u.gid) }
  return out
}

/** The [ERROR] line of a run (tap's process-info hook may add noise to a non-root child's stderr). */
export const errorLine = (r: { stderr: string }): string | undefined => r.stderr.split('\n').find(l => l.startsWith('[ERROR]'))
