// Builds dist/enroot.cjs, the whole launcher in one CommonJS file, and dist/enroot.cjs.cache, a V8 code
// cache for it (run by `npm run build`, after tsc). bin/enroot loads the two.
//
// Why: every `enroot start` pays Node's start-up plus the loading of its own code. As 30 ES modules that
// cost 45 ms over `node -e 0` here; one file cuts the resolving and reading, and the code cache cuts the
// compiling: V8 takes the bytecode of every function the training run below used instead of parsing and
// compiling them again (bench/start prints the figures).
//
// The cache is made by training: bin/enroot runs `version`, `list` and a `start` of an empty root
// filesystem (its command cannot exist, so it fails after the whole start-up path has run) with
// ENROOT_WRITE_CODE_CACHE set, each run adding the functions it compiled. V8 checks the cache against its
// own version and flags and rejects it otherwise; bin/enroot then compiles as usual. The first line of the
// bundle is a hash of it, repeated at the head of the cache, so a cache never meets other bytes.
import { build } from 'esbuild'
import { createHash } from 'node:crypto'
import { spawnSync } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const out = join(root, 'dist', 'enroot.cjs')
const cache = `${out}.cache`

const result = await build({
  entryPoints: [join(root, 'launcher', 'src', 'cli.ts')],
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  write: false,
  // Loaded file by file from node_modules when a command needs it (image/undici-parts.ts says why).
  external: ['undici'],
  // import.meta.url in a CommonJS bundle: the bundle's own URL (install-paths.ts walks up from it).
  define: { 'import.meta.url': '__enroot_bundle_url' },
  banner: { js: 'const __enroot_bundle_url = require("node:url").pathToFileURL(__filename).href;' },
  logLevel: 'warning'
})
const code = result.outputFiles[0].text
const id = createHash('sha256').update(code).digest('hex')
mkdirSync(dirname(out), { recursive: true })
rmSync(cache, { force: true })
writeFileSync(`${out}.tmp`, `// enroot-build ${id}\n${code}`)
renameSync(`${out}.tmp`, out)

// ---- training ----
const work = mkdtempSync(join(tmpdir(), 'enroot-train-'))
try {
  const dirs = Object.fromEntries(['data', 'cache', 'config', 'run', 'tmp'].map(d => [d, join(work, d)]))
  for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true })
  const rootfs = join(dirs.data, 'train')
  for (const d of ['bin', 'dev', 'etc', 'proc', 'sys', 'tmp', 'run', 'var/run', 'var/lock', 'usr', 'root']) mkdirSync(join(rootfs, d), { recursive: true })
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: work,
    ENROOT_DATA_PATH: dirs.data,
    ENROOT_CACHE_PATH: dirs.cache,
    ENROOT_CONFIG_PATH: dirs.config,
    ENROOT_RUNTIME_PATH: dirs.run,
    ENROOT_TEMP_PATH: dirs.tmp,
    ENROOT_WRITE_CODE_CACHE: cache
  }
  const train = [['version'], ['list'], ['start', 'train', '/enroot-training-run']]
  for (const args of train) {
    spawnSync(process.execPath, [join(root, 'bin', 'enroot'), ...args], { env, stdio: 'ignore', timeout: 60_000 })
  }
  try { chmodSync(cache, 0o644) } catch {
    process.stderr.write('bundle: no code cache was written; enroot will run without it (slower start-up)\n')
  }
} finally {
  rmSync(work, { recursive: true, force: true })
}
