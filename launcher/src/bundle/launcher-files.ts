// Which files make up the launcher a bundle carries, from a checkout or from a `make install` tree (both have
// the same shape: dist/, package.json, bin/enroot, the native addon, node_modules/). The only place that
// knows it: a change to how the launcher is built (one bundled file, say) changes this function alone.
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { PACKAGE_ROOT } from '../config/install-paths.js'
import { EnrootError } from '../util/errors.js'

export interface LauncherFile {
  /** absolute path on this host: a file, or a directory copied whole (without its node_modules/) */
  src: string
  /** path relative to the launcher's root in the bundle (/.enroot/lib) */
  dest: string
}

export interface Launcher {
  files: LauncherFile[]
  /** the script node runs, relative to the launcher's root; its argv[2] is the command */
  entry: string
}

interface PackageJson {
  dependencies?: Record<string, string>
  optionalDependencies?: Record<string, string>
  peerDependencies?: Record<string, string>
  peerDependenciesMeta?: Record<string, { optional?: boolean }>
}

const readPackage = (dir: string): PackageJson => JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as PackageJson

/** Node's lookup: <from>/node_modules/<name>, then each parent's node_modules, up to the package root. */
function resolvePackage (name: string, from: string, root: string): string | undefined {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name)
    if (existsSync(join(candidate, 'package.json'))) return candidate
    if (dir === root || dirname(dir) === dir) return undefined
  }
}

/**
 * The production dependencies, as directories: package.json's "dependencies" followed recursively, each
 * resolved the way Node resolves it (nested node_modules first). The same set as `npm ls --omit=dev --all
 * --parseable`, without npm's second of start-up. A missing optional or peer dependency is skipped; a
 * missing required one is an error, because the bundle would not start.
 */
export function productionModules (root: string = PACKAGE_ROOT): string[] {
  const found = new Set<string>()
  const visit = (dir: string): void => {
    const pkg = readPackage(dir)
    const optional = new Set([...Object.keys(pkg.optionalDependencies ?? {}),
      ...Object.keys(pkg.peerDependencies ?? {}).filter(n => pkg.peerDependenciesMeta?.[n]?.optional === true)])
    const names = [...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.optionalDependencies ?? {}), ...Object.keys(pkg.peerDependencies ?? {})]
    for (const name of names) {
      const at = resolvePackage(name, dir, root)
      if (at === undefined) {
        if (optional.has(name) || Object.hasOwn(pkg.peerDependencies ?? {}, name)) continue
        throw new EnrootError('NOT_FOUND', `No such file or directory: ${join(dir, 'node_modules', name)}`, { hint: 'Run npm ci (a checkout) or make install again.' })
      }
      if (found.has(at)) continue
      found.add(at)
      visit(at)
    }
  }
  visit(root)
  return [...found].sort()
}

export function launcherFiles (root: string = PACKAGE_ROOT): Launcher {
  const addon = join('native', 'build', 'Release', 'enroot_native.node')
  const fixed = ['dist', 'package.json', join('bin', 'enroot'), addon]
  for (const f of fixed) {
    if (!existsSync(join(root, f))) throw new EnrootError('NOT_FOUND', `No such file or directory: ${join(root, f)}`, { hint: 'Build the launcher first (make), or reinstall it.' })
  }
  // bin/package.json marks bin/enroot as CommonJS where the launcher is built as one file
  const optional = [join('bin', 'package.json')].filter(f => existsSync(join(root, f)))
  const files = [...fixed, ...optional].map(f => ({ src: join(root, f), dest: f }))
  for (const dir of productionModules(root)) files.push({ src: dir, dest: relative(root, dir) })
  return { files, entry: join('bin', 'enroot') }
}

