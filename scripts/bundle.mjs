// Builds dist/enroot.cjs, the whole launcher in one CommonJS file, and two V8 code caches for it (run by
// `npm run build`, after tsc): dist/enroot.cjs.net.cache for the commands that talk to a registry (import,
// load, digest and the Slurm launcher: bin/enroot's NET list) and dist/enroot.cjs.cache for the rest.
//
// Why: every `enroot start` pays Node's start-up plus the loading of its own code. As 30 ES modules that
// cost 45 ms over `node -e 0` here; one file cuts the resolving and reading, and the code cache cuts the
// compiling: V8 takes the bytecode of every function a training run below used instead of parsing and
// compiling them again (bench/start and bench/srun print the figures; a warm Slurm launcher uses 87 ms of
// CPU instead of 134). Two caches because V8 deserialises a whole cache in every process: the registry
// client's functions would cost every `enroot start` about 3 ms.
//
// Training: bin/enroot runs each command with ENROOT_WRITE_CODE_CACHE set, each run adding the functions it
// compiled: `version`, `list` and a `start` of an empty root filesystem (its command cannot exist, so it
// fails after the whole start-up path has run); then, against a registry in this process
// (scripts/train-registry.mjs), the warm paths of a Slurm step's launcher, `import` and `digest`. V8 checks
// a cache against its own version and flags and rejects it otherwise; bin/enroot then compiles as usual
// (training checks that V8 takes what it wrote). The first line of the bundle is a hash of it, repeated
// at the head of each cache, so a cache never meets other bytes.
import { build } from 'esbuild'
import { createHash } from 'node:crypto'
import { spawn } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startTrainingRegistry, TRAIN_IMAGE } from './train-registry.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const out = join(root, 'dist', 'enroot.cjs')
const cache = `${out}.cache`

// undici's client.js requires ./client-h2.js when it loads, and client-h2.js requires node:http2: about
// 16 ms of CPU in every process that talks to a registry, paid on every node of every
// `srun --container-image`. client.js calls it only for a connection that negotiated HTTP/2, which undici
// offers only with allowH2 (TLS ALPN, core/connect.js) or useH2c, and the registry client sets neither.
// If that ever changes, the stub throws and undici fails the connection's requests with its message
// (checked with useH2c). The build stops if the stub is no longer used (an undici upgrade moved the file)
// or node:http2 is back in the bundle.
const H2_STUB = `module.exports = function connectH2 () {
  throw new Error("HTTP/2 is not supported by enroot-ts's registry client (the bundle leaves undici's client-h2.js out)")
}
`
let h2Stubbed = false
const withoutHttp2 = {
  name: 'without-http2',
  setup (b) {
    b.onResolve({ filter: /^\.\/client-h2\.js$/ }, args => {
      if (!/[\\/]node_modules[\\/]undici[\\/]lib[\\/]dispatcher$/.test(args.resolveDir)) return undefined
      h2Stubbed = true
      return { path: 'undici/lib/dispatcher/client-h2.js', namespace: 'without-http2' }
    })
    b.onLoad({ filter: /.*/, namespace: 'without-http2' }, () => ({ contents: H2_STUB, loader: 'js' }))
  }
}

// llhttp's WebAssembly, 145 kB of base64 (a SIMD build and a fallback), stays in node_modules (undici
// remains a production dependency for it): undici requires one of the two on its first connection; in
// the bundle, every command would read both, and the code cache would carry the one training used.
const wasmOutside = {
  name: 'wasm-outside',
  setup (b) {
    b.onResolve({ filter: /^\.\.\/llhttp\/llhttp(_simd)?-wasm\.js$/ }, args =>
      ({ path: `undici/lib/llhttp/${args.path.slice('../llhttp/'.length)}`, external: true }))
  }
}

// node:assert and node:http, as undici's bundled files use them, replaced by two small local modules
// (launcher/src/image/undici-assert.cts and undici-http.cts say why and what they keep): together about
// 2.5 ms of CPU, seven of Node's modules plus HTTP's client and server, in every process that talks to a
// registry. Only for undici's files; the stubs stand for exactly the uses listed here, so the build stops
// when an undici upgrade uses either module in another way (reading the requiring file's source).
const undiciLib = /[\\/]node_modules[\\/]undici[\\/]lib[\\/]/
const undiciStubs = {
  'node:assert': {
    stub: join(root, 'launcher', 'src', 'image', 'undici-assert.cts'),
    // every mention of `assert` is its require or a call of it: assert(value) or assert(value, message)
    allowed: () => true,
    check: src => !/\bassert\b(?!\()/.test(src.replace("const assert = require('node:assert')", ''))
  },
  'node:http': {
    stub: join(root, 'launcher', 'src', 'image', 'undici-http.cts'),
    allowed: file => /dispatcher[\\/]client\.js$|core[\\/]util\.js$/.test(file),
    // client.js: http.maxHeaderSize and nothing else of `http`; util.js: the IncomingMessage it destructures
    check: src => {
      const rest = src.replace("const http = require('node:http')", '').replace("const { IncomingMessage } = require('node:http')", '')
      return !/require\('node:http'\)/.test(rest) && !/\bhttp\.(?!maxHeaderSize\b)\w/.test(rest)
    }
  }
}
const stubbedBy = new Set()
const undiciBuiltinStubs = {
  name: 'undici-builtin-stubs',
  setup (b) {
    b.onResolve({ filter: /^node:(assert|http)$/ }, args => {
      if (!undiciLib.test(args.importer)) return undefined
      const s = undiciStubs[args.path]
      if (!s.allowed(args.importer) || !s.check(readFileSync(args.importer, 'utf8'))) {
        throw new Error(`bundle: ${args.importer} uses ${args.path} in a way ${s.stub} does not stand for; update it or drop it from bundle.mjs`)
      }
      stubbedBy.add(args.path)
      return { path: s.stub }
    })
  }
}

const result = await build({
  entryPoints: [join(root, 'launcher', 'src', 'cli.ts')],
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  write: false,
  // undici comes in file by file (image/undici-files.cts) and initialises only when a command first
  // reaches the registry client: esbuild wraps a module reached through import() in a lazy init.
  plugins: [withoutHttp2, wasmOutside, undiciBuiltinStubs],
  // import.meta.url in a CommonJS bundle: the bundle's own URL (install-paths.ts walks up from it).
  define: { 'import.meta.url': '__enroot_bundle_url' },
  banner: { js: 'const __enroot_bundle_url = require("node:url").pathToFileURL(__filename).href;' },
  logLevel: 'warning'
})
// esbuild escapes non-ASCII characters in code but not in the comments it keeps (a '§' in a doc comment,
// an 'ä' in a licence): one is enough for V8 to hold the whole source as UTF-16. All ASCII, it is a
// one-byte string, read and decoded about 1 ms faster by every command. A \uXXXX escape would mean the
// same character anywhere in code too, so the replacement is safe wherever it lands.
const code = result.outputFiles[0].text.replace(/[^\x00-\x7f]/g, c => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
if (!h2Stubbed) throw new Error("bundle: undici's client-h2.js was not replaced; update the without-http2 plugin")
if (/require\("(node:)?http2"\)/.test(code)) throw new Error('bundle: node:http2 is in the bundle; find what requires it')
for (const m of Object.keys(undiciStubs)) {
  if (!stubbedBy.has(m)) throw new Error(`bundle: no undici file required ${m} any more; drop its stub from bundle.mjs`)
  if (code.includes(`require("${m}")`)) throw new Error(`bundle: ${m} is still in the bundle; find what requires it`)
}
const id = createHash('sha256').update(code).digest('hex')
mkdirSync(dirname(out), { recursive: true })
rmSync(cache, { force: true })
rmSync(`${out}.net.cache`, { force: true })
writeFileSync(`${out}.tmp`, `// enroot-build ${id}\n${code}`)
renameSync(`${out}.tmp`, out)

// ---- training ----
/** Runs node with `args`; resolves with its exit status and stderr (kept for a failure message). */
function run (args, env) {
  return new Promise(resolve => {
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'ignore', 'pipe'], timeout: 60_000 })
    let stderr = ''
    child.stderr.setEncoding('utf8').on('data', s => { stderr += s })
    child.on('error', err => resolve({ status: null, stderr: String(err) }))
    child.on('close', status => resolve({ status, stderr }))
  })
}

// What bin/enroot does with the cache, in a fresh process: exits 1 when V8 rejects it.
const CACHE_CHECK = `const { readFileSync } = require('node:fs'); const vm = require('node:vm')
const [file, cache] = process.argv.slice(1)
const source = readFileSync(file, 'utf8')
const id = Buffer.byteLength(source.slice(0, source.indexOf('\\n') + 1))
const script = new vm.Script(require('node:module').wrap(source), { filename: file, cachedData: readFileSync(cache).subarray(id) })
process.exitCode = script.cachedDataRejected ? 1 : 0`

/** Writes `file` from scratch with `runs`, one after the other; false when V8 then rejects it. */
async function train (file, runs, env) {
  rmSync(file, { force: true })
  for (const r of runs) {
    await run([join(root, 'bin', 'enroot'), ...r.args], { ...env, ...(r.write === false ? {} : { ENROOT_WRITE_CODE_CACHE: file }) })
  }
  if (!existsSync(file)) return true
  if ((await run(['-e', CACHE_CHECK, out, file], {})).status === 0) return true
  rmSync(file, { force: true })
  return false
}

const work = mkdtempSync(join(tmpdir(), 'enroot-train-'))
const registry = await startTrainingRegistry()
try {
  const dirs = Object.fromEntries(['data', 'cache', 'config', 'run', 'tmp'].map(d => [d, join(work, d)]))
  for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true })
  // the same empty root filesystem twice: a container `start` names, and a named one of a Slurm step
  for (const name of ['train', 'pyxis_train']) {
    for (const d of ['bin', 'dev', 'etc', 'proc', 'sys', 'tmp', 'run', 'var/run', 'var/lock', 'usr', 'root']) mkdirSync(join(dirs.data, name, d), { recursive: true })
  }
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: work,
    ENROOT_DATA_PATH: dirs.data,
    ENROOT_CACHE_PATH: dirs.cache,
    ENROOT_CONFIG_PATH: dirs.config,
    ENROOT_RUNTIME_PATH: dirs.run,
    ENROOT_TEMP_PATH: dirs.tmp,
    ENROOT_ALLOW_HTTP: 'y'
  }
  const image = `docker://${registry.host}#${TRAIN_IMAGE}`
  const step = (n, ...more) => ['slurm-launch', '--job-id=1', `--step-id=${n}`, `--runtime-path=${join(work, 'pyxis')}`, '--entrypoint=n', `--cwd=${work}`, ...more]
  const caches = [
    { file: cache, runs: [{ args: ['version'] }, { args: ['list'] }, { args: ['start', 'train', '/enroot-training-run'] }] },
    // bin/enroot's NET commands: a Slurm step's launcher and the registry commands, on their warm paths
    // (the image is in the cache: the first, untrained import converts it). A container's command cannot
    // run in these root filesystems, so each start fails once everything before it has run.
    {
      file: `${out}.net.cache`,
      runs: [
        { args: ['import', '-o', join(work, 'cold.sqsh'), image], write: false },
        { args: step(1, `--image=${image.slice('docker://'.length)}`, '--use-squashfuse') },
        { args: step(2, '--name=train', `--mount=${work} /mnt x-create=auto,rbind`) },
        { args: ['import', '-o', join(work, 'warm.sqsh'), image] },
        { args: ['digest', image] }
      ]
    }
  ]
  for (const c of caches) {
    if (!await train(c.file, c.runs, env)) process.stderr.write(`bundle: V8 rejects the code cache that training wrote (${c.file}); enroot will run without it (slower start-up)\n`)
    try { chmodSync(c.file, 0o644) } catch {
      process.stderr.write(`bundle: no code cache was written (${c.file}); enroot will run without it (slower start-up)\n`)
    }
  }
} finally {
  await registry.close()
  rmSync(work, { recursive: true, force: true })
}
