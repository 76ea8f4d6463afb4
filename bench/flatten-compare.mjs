#!/usr/bin/env node
// Side-by-side: how long does a multi-layer gzip image take to become a squashfs?
//   (a) gzip -dc of every blob to /dev/null: the floor (decompression alone)
//   (b) our streaming flatten → tar2sqfs (no extraction), with the given ENROOT_SQUASH_OPTIONS
//   (c) extract every layer to disk (whiteouts applied by deleting), then mksquashfs the tree with the
//       settings (b) used; --full adds (c2') mksquashfs with the options verbatim
// Usage: npx tsc -p tsconfig.build.json && node bench/flatten-compare.mjs [--options "-comp lzo -noD"] [--jobs N] [--full]
// (--options defaults to ENROOT_SQUASH_OPTIONS's default from the settings table)
// The generated layers are kept in $BENCH_DIR (default /tmp/enroot-bench-layers) and reused.
import { createHash, randomBytes } from 'node:crypto'
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { availableParallelism } from 'node:os'
import { performance } from 'node:perf_hooks'
import { buildSquashfs } from '../dist/image/squash.js'
import { encodeHeader, paddingFor, END_OF_ARCHIVE } from '../dist/image/tar-writer.js'
import { SETTINGS } from '../dist/config/settings.js'

const arg = (name, def) => { const i = process.argv.indexOf(name); return i === -1 ? def : process.argv[i + 1] }
const OPTIONS = arg('--options', SETTINGS.find(s => s.key === 'ENROOT_SQUASH_OPTIONS').confDefault)
const JOBS = Number(arg('--jobs', String(availableParallelism())))
const DIR = process.env.BENCH_DIR ?? '/tmp/enroot-bench-layers'
const MB = 1 << 20

// Content pools: slices of pseudo-text (compressible) and of random bytes (not), so that files cost
// no per-byte work to make.
function pools () {
  const words = ['lib', 'usr', 'include', 'static', 'const', 'return', 'function', 'error', 'value', 'the', 'data', 'python', 'package', 'module', 'int', 'void', '{', '}', ';', '\n']
  const seed = randomBytes(4 * MB)
  const parts = []
  for (let i = 0; i < seed.length; i++) parts.push(words[seed[i] % words.length])
  return { text: Buffer.from(parts.join(' ')), noise: randomBytes(16 * MB) }
}

const entry = (name, size, type = 'file', linkname = '') => ({ name, type, mode: type === 'directory' ? 0o755 : 0o644, uid: 0, gid: 0, size, mtime: 1700000000, linkname, devmajor: 0, devminor: 0, xattrs: new Map() })

/** one layer: `count` files of about `avg` bytes under `prefix`, a fraction random */
function layer (p, prefix, count, avg, noiseShare, extra = []) {
  const out = []
  let bytes = 0
  const dirs = Math.ceil(count / 100)
  for (let d = 0; d < dirs; d++) out.push(encodeHeader(entry(`${prefix}/d${d}/`, 0, 'directory')))
  for (let i = 0; i < count; i++) {
    const size = Math.max(16, Math.floor(avg * (0.2 + 1.6 * Math.random())))
    const pool = Math.random() < noiseShare ? p.noise : p.text
    const off = Math.floor(Math.random() * (pool.length - size))
    out.push(encodeHeader(entry(`${prefix}/d${i % dirs}/f${i}`, size)), pool.subarray(off, off + size), paddingFor(size))
    bytes += size
  }
  for (const e of extra) out.push(encodeHeader(e.entry), e.data ?? Buffer.alloc(0), paddingFor(e.entry.size))
  out.push(END_OF_ARCHIVE)
  return { tar: Buffer.concat(out), bytes, files: count }
}

function generate () {
  const meta = join(DIR, 'layers.json')
  if (existsSync(meta)) return JSON.parse(readFileSync(meta, 'utf8'))
  mkdirSync(DIR, { recursive: true })
  console.log(`generating layers in ${DIR} ...`)
  const p = pools()
  const big = (name, size, noise) => ({ entry: entry(name, size), data: (noise ? p.noise : p.text).subarray(0, size) })
  const specs = [
    layer(p, 'usr/share', 6000, 12 * 1024, 0.1),
    layer(p, 'usr/lib', 3000, 28 * 1024, 0.5, [{ entry: entry('usr/share/d0/.wh.f0', 0) }, { entry: entry('usr/share/d1/.wh..wh..opq', 0) }]),
    layer(p, 'usr/share', 1500, 8 * 1024, 0.2),
    layer(p, 'opt/app', 200, 64 * 1024, 0.3, [big('opt/model.bin', 12 * MB, true), big('opt/data.txt', 6 * MB, false)])
  ]
  const layers = specs.map((s, i) => {
    const gz = execFileSync('pigz', ['-p', String(JOBS), '-6', '-c'], { input: s.tar, maxBuffer: 1 << 30 })
    const hex = createHash('sha256').update(gz).digest('hex')
    writeFileSync(join(DIR, hex), gz)
    console.log(`  layer ${i + 1}: ${s.files} files, ${(s.tar.length / MB).toFixed(0)} MB tar, ${(gz.length / MB).toFixed(0)} MB gzip`)
    return { path: join(DIR, hex), mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: `sha256:${hex}`, tarBytes: s.tar.length, files: s.files }
  })
  writeFileSync(meta, JSON.stringify(layers))
  return layers
}

function time (label, fn) {
  const t0 = performance.now()
  const r = fn()
  return Promise.resolve(r).then(() => { const s = (performance.now() - t0) / 1000; console.log(`${label.padEnd(44)} ${s.toFixed(1).padStart(6)} s`); return s })
}

function sh (cmd, args) {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 1 << 26 })
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`)
}

const layers = generate()
const total = layers.reduce((n, l) => n + l.tarBytes, 0)
const files = layers.reduce((n, l) => n + l.files, 0)
console.log(`image: ${layers.length} gzip layers, ${files} files, ${(total / MB).toFixed(0)} MB uncompressed; options "${OPTIONS}", ${JOBS} jobs\n`)
const work = join(DIR, 'work')
rmSync(work, { recursive: true, force: true })
mkdirSync(work)

const a = await time('(a) gzip -dc to /dev/null (floor)', () => { for (const l of layers) sh('sh', ['-c', `gzip -dc '${l.path}' > /dev/null`]) })
const outB = join(work, 'b.sqsh')
const b = await time('(b) streaming flatten -> tar2sqfs', () => buildSquashfs({ layers, extraFiles: [], output: outB, squashOptions: OPTIONS, processors: JOBS, tmpdir: work }))
const outC = join(work, 'c.sqsh')
const root = join(work, 'rootfs')
const x = await time('(c1) extract to disk, apply whiteouts', () => {
  mkdirSync(root)
  for (const l of layers) {
    sh('tar', ['-C', root, '-xzf', l.path, '--exclude=dev/*'])
    // whiteouts: delete what they hide (what an unprivileged extract-based importer must do)
    sh('sh', ['-c', `cd '${root}' && find . -name '.wh.*' | while read -r w; do d=$(dirname "$w"); b=$(basename "$w"); if [ "$b" = .wh..wh..opq ]; then rm -f "$w"; else rm -rf "$d/\${b#.wh.}" "$w"; fi; done`])
  }
})
const mk = (opts) => sh('mksquashfs', [root, outC, '-noappend', '-all-root', '-no-progress', '-quiet', '-processors', String(JOBS), ...opts.split(/\s+/).filter(Boolean)])
// The same effective settings as (b) chose for -noD (the compressor's fastest level) compare the
// pipelines only. With --full, also mksquashfs with the options as given: enroot's default
// "-comp lzo -noD" still compresses fragments (every small file) with lzo1x_999 level 8 and takes
// minutes here, hence not by default (keeps the bench under 3 minutes).
const fastOpts = /-noD/.test(OPTIONS) && !/lz4/.test(OPTIONS) ? OPTIONS.replace(/\s*-noD\b|\s*-noDataCompression\b/, '') + ' -Xcompression-level 1' : OPTIONS
const mb = (n) => (n / MB).toFixed(0)
const m2 = await time(`(c2) mksquashfs ${fastOpts}`, () => mk(fastOpts))
const sizes = [`(b) ${mb(statSync(outB).size)} MB`, `(c2) ${mb(statSync(outC).size)} MB`]
let m1
if (process.argv.includes('--full') && fastOpts !== OPTIONS) {
  m1 = await time(`(c2') mksquashfs ${OPTIONS}`, () => mk(OPTIONS))
  sizes.push(`(c2') ${mb(statSync(outC).size)} MB`)
}
console.log(`\nimage sizes: ${sizes.join(', ')}`)
console.log(`ratios: (b)/(a) ${(b / a).toFixed(2)}; (c1+c2)/(b) ${((x + m2) / b).toFixed(2)}${m1 !== undefined ? `; (c1+c2')/(b) ${((x + m1) / b).toFixed(2)}` : ''}`)
rmSync(work, { recursive: true, force: true })
