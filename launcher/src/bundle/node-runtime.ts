// The Node runtime a bundle carries: this process's own executable. Node and the addon are dynamically
// linked, so the target needs a glibc at least as new as this host's (the .run's -v checks it), and the
// shared libraries an official Node build uses (libstdc++, libgcc_s); a distribution's Node linked against
// libnode or libuv would need those too, which is worth a warning when the bundle is built.
import { spawnSync } from 'node:child_process'
import { basename } from 'node:path'

export interface NodeRuntime {
  /** the executable copied to /.enroot/bin/node */
  path: string
  version: string
  /** glibc this process runs on ("2.36"), recorded in the header for -v */
  glibc: string
  /** shared libraries outside glibc and the C++ runtime, which the target may lack */
  unusualLibraries: string[]
}

/** Libraries every glibc system with a C++ runtime has. */
const COMMON = /^(linux-vdso|linux-gate|ld-linux[^ ]*|libc|libm|libdl|libpthread|librt|libstdc\+\+|libgcc_s|libresolv|libutil)\.so/

/** The libraries `ldd` lists that are not in COMMON (none when ldd is missing: the warning is best effort). */
export function unusualLibraries (lddOutput: string): string[] {
  return lddOutput.split('\n').map(l => l.trim().split(/\s+/)[0] ?? '').filter(n => n !== '' && !COMMON.test(basename(n)) && n !== 'statically')
}

export function nodeRuntime (): NodeRuntime {
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header
  const glibc = header?.glibcVersionRuntime ?? '0'
  const ldd = spawnSync('ldd', [process.execPath], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
  return {
    path: process.execPath,
    version: process.version,
    glibc,
    unusualLibraries: ldd.status === 0 ? unusualLibraries(ldd.stdout) : []
  }
}
