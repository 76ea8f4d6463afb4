// What goes into a bundle's archive: the image's root filesystem, extracted as the caller, plus /.enroot:
//   bin/node            the Node runtime (this process's executable)
//   lib/                the launcher (launcher-files.ts); the .run runs lib/<entry> bundle-run
//   etc/system/         hooks.d, mounts.d, environ.d of ENROOT_SYSCONF_PATH (links followed)
//   etc/config          --all: the ENROOT_* settings, as `export KEY='value'` lines the .run sources
//   etc/user/           --all: hooks.d, mounts.d, environ.d of ENROOT_CONFIG_PATH
import { chmodSync, copyFileSync, cpSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import type { BundlePlan } from './plan.js'
import type { Launcher } from './launcher-files.js'
import { fixPerms, removeTree } from '../runtime/rootfs-store.js'
import { shq } from '../config/load.js'
import { fromSystemError } from '../util/errors.js'

export const DROPIN_DIRS = ['hooks.d', 'mounts.d', 'environ.d'] as const

/** The unsquashfs command line that extracts the image into dir (which must not exist yet). */
export function extractArgv (image: string, dir: string, processors: number, tty: boolean): string[] {
  // -user-xattrs keeps only user.* xattrs: an unprivileged user cannot set the others anyway (as create).
  return ['unsquashfs', ...(tty ? [] : ['-no-progress']), ...(processors > 0 ? ['-processors', String(processors)] : []), '-user-xattrs', '-d', dir, image]
}

/** The regular files (links followed) directly in dir, copied with their modes; subdirectories are not. */
function copyDropIns (from: string, to: string): void {
  let names: string[]
  try { names = readdirSync(from).sort() } catch { return }
  mkdirSync(to, { recursive: true })
  for (const n of names) {
    const src = join(from, n)
    let isFile = false
    try { isFile = statSync(src).isFile() } catch {}
    if (isFile) copyFileSync(src, join(to, n))
  }
}

/** /.enroot/etc/config: sourced by the .run's POSIX sh before the launcher starts. */
export const configText = (settings: ReadonlyArray<readonly [string, string]>): string =>
  settings.map(([k, v]) => `export ${k}=${shq(v)}\n`).join('')

/** Add /.enroot to an extracted root filesystem; rootfs permissions are fixed first (enroot's fixperms). */
export function addRuntime (rootfs: string, plan: BundlePlan, node: string, launcher: Launcher): void {
  fixPerms(rootfs)
  const top = join(rootfs, '.enroot')
  try {
    // an image made from a bundle's tree carries an older runtime: replace it
    removeTree(top)
    mkdirSync(join(top, 'bin'), { recursive: true, mode: 0o755 })
    copyFileSync(node, join(top, 'bin', 'node'))
    chmodSync(join(top, 'bin', 'node'), 0o755)
    const lib = join(top, 'lib')
    for (const f of launcher.files) {
      const dest = join(lib, f.dest)
      mkdirSync(dirname(dest), { recursive: true })
      const skip = join(f.src, 'node_modules')
      cpSync(f.src, dest, { recursive: true, dereference: true, filter: (p) => p !== skip })
    }
    mkdirSync(join(top, 'etc', 'system'), { recursive: true })
    for (const d of DROPIN_DIRS) copyDropIns(join(plan.sysconfPath, d), join(top, 'etc', 'system', d))
    if (plan.all !== undefined) {
      writeFileSync(join(top, 'etc', 'config'), configText(plan.all.settings))
      for (const d of DROPIN_DIRS) copyDropIns(join(plan.all.configPath, d), join(top, 'etc', 'user', d))
    }
  } catch (err) {
    throw fromSystemError(err, top)
  }
}
