// Where the installed pieces live. `make install` writes them into install-paths.json at the package
// root; a checkout (development, tests) has no such file and uses paths relative to the repository.
// A side file rather than a rewrite of the compiled code: dist/enroot.cjs comes with a V8 code cache
// (scripts/bundle.mjs) that is only valid for the exact bytes it was made from.
import { fileURLToPath } from 'node:url'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'

/**
 * The repository (or installed package) root: the nearest directory above this code with a package.json.
 * The same answer from launcher/src/config/, dist/config/ and the single-file dist/enroot.cjs.
 */
function packageRoot (): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir)
  return dir
}
export const PACKAGE_ROOT = packageRoot()

interface Installed { sysconfdir?: string, libdir?: string }
function installed (): Installed {
  try { return JSON.parse(readFileSync(join(PACKAGE_ROOT, 'install-paths.json'), 'utf8')) as Installed } catch { return {} }
}
const INSTALLED = installed()

/** system configuration: enroot.conf, enroot.conf.d/, environ.d/, mounts.d/, hooks.d/ */
export const SYSCONFDIR = INSTALLED.sysconfdir ?? resolve(PACKAGE_ROOT, 'etc')
/** the package's own files: native addon, launcher, bundle pieces */
export const LIBDIR = INSTALLED.libdir ?? PACKAGE_ROOT

export const VERSION = '4.1.2'
export const IMPLEMENTATION = 'enroot-ts 0.1.0'
