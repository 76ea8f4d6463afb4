// The "site configuration" of the demo and bench clusters, as an administrator would set it.
//
// The shim builds the launcher's environment and drops enroot's path settings from the job's
// (doc/slurm.md: a user must not redirect them), so they must come from the site. A real site sets them in
// /etc/enroot/enroot.conf; a checkout reads <repo>/etc/enroot.conf, which the test suite shares, so the demo
// does not touch it and instead points plugstack's `launcher=` at this small wrapper that sets them and
// execs the real launcher: cache, containers, runtime and temporary files go to the node's local scratch
// (NODE_LOCAL, a different directory on every node), per user. The nodes share every other path (home
// included), and three nodes creating the same unnamed container `pyxis_<job>.<step>` in one shared
// directory would collide. (Plain HTTP to the demo registry is the plugstack's `allow_http=1`.)
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { NODE_LOCAL } from '../test/helpers/slurm-cluster.js'

/** Writes <binDir>/enroot-launcher and returns its path (for plugstack's `launcher=`). */
export function siteLauncher (binDir: string, repo: string, node: string, extra: Record<string, string> = {}): string {
  mkdirSync(binDir, { recursive: true, mode: 0o755 })
  chmodSync(binDir, 0o755)
  const path = join(binDir, 'enroot-launcher')
  const base = `${NODE_LOCAL}/enroot/$(id -u)`
  const exports = Object.entries(extra).map(([k, v]) => `export ${k}='${v}'\n`).join('')
  writeFileSync(path, `#!/bin/sh
# Site configuration of the enroot-ts demo cluster (written by scripts/demo-site.ts): see there why.
base=${base}
export ENROOT_CACHE_PATH="$base/cache" ENROOT_DATA_PATH="$base/data" ENROOT_RUNTIME_PATH="$base/run" ENROOT_TEMP_PATH="$base/tmp"
${exports}mkdir -p "$ENROOT_CACHE_PATH" "$ENROOT_DATA_PATH" "$ENROOT_RUNTIME_PATH" "$ENROOT_TEMP_PATH" || exit 1
exec ${node} ${join(repo, 'bin', 'enroot')} "$@"
`, { mode: 0o755 })
  chmodSync(path, 0o755)
  return path
}

/** The demo's plugstack.conf line: runtime_path node-local, like /run/pyxis on a real node; allow_http=1 is
 *  how an admin lets the launcher use a plain-HTTP registry (the job's own ENROOT_ALLOW_HTTP is ignored). */
export function plugstackLine (so: string, launcher: string, extra = ''): string {
  return `required ${so} launcher=${launcher} runtime_path=${NODE_LOCAL}/pyxis allow_http=1${extra === '' ? '' : ` ${extra}`}\n`
}
