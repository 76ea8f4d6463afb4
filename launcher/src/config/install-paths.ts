// Where the installed pieces live. `make install` rewrites the two markers below in the compiled file;
// a checkout (development, tests) uses paths relative to the repository.
import { fileURLToPath } from 'node:url'
import { dirname, resolve } from 'node:path'

const INSTALLED_SYSCONFDIR = '@sysconfdir@'
const INSTALLED_LIBDIR = '@libdir@'

const here = dirname(fileURLToPath(import.meta.url))
/** repository (or package) root: dist/config/ → ../.. */
export const PACKAGE_ROOT = resolve(here, '..', '..')

const installed = (v: string): string | undefined => v.startsWith('@') ? undefined : v

/** system configuration: enroot.conf, enroot.conf.d/, environ.d/, mounts.d/, hooks.d/ */
export const SYSCONFDIR = installed(INSTALLED_SYSCONFDIR) ?? resolve(PACKAGE_ROOT, 'etc')
/** the package's own files: native addon, launcher, bundle pieces */
export const LIBDIR = installed(INSTALLED_LIBDIR) ?? PACKAGE_ROOT

export const VERSION = '4.1.2'
export const IMPLEMENTATION = 'enroot-ts 0.1.0'
