// Cold and warm `enroot import` of a multi-layer gzip image (≥ 200 MB uncompressed, ≥ 10,000 files) from a
// local docker-registry, against a floor measured in the same run: `gzip -dc` of its layer blobs.
// Goals: cold ≤ 1.3 × floor, warm ≤ 0.2 s.
//
//   npm run build && node --import ./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/import.ts
//
// Needs docker-registry, skopeo and tar2sqfs (scripts/setup.sh). ENROOT_SQUASH_OPTIONS is passed through
// when set. BENCH_COLD_RUNS (default 3) cold imports, each into an empty cache and each right after its
// own floor measurement, so that a machine whose load changes during the run still gives fair ratios;
// the medians are reported. Everything is built under $TMPDIR and removed at the end.
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, chmodSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { availableParallelism, loadavg, tmpdir } from 'node:os'
import { gzipSync } from 'node:zlib'
import { ENROOT } from '../test/helpers/env.js'
import { SETTINGS } from '../launcher/src/config/settings.js'
import { startRegistry } from '../test/helpers/registry.js'
import { writeOciLayout, pushLayout, type LayerInput } from '../test/helpers/oci-image.js'

const MB = 1024 * 1024
const now = (): number => performance.now() / 1000
const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor((s.length - 1) / 2)] as number }

/** A fast deterministic PRNG (xorshift32), so the image is the same on every run. */
function rng (seed: number): () => number {
  let x = seed >>> 0 || 1
  return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x }
}

/** 4 MB of word-like text: file contents are slices of it, so they compress like source code (~3-4×). */
function corpus (): Buffer {
  const r = rng(7)
  const words = Array.from({ length: 2000 }, () => Array.from({ length: 2 + r() % 9 }, () => String.fromCharCode(97 + r() % 26)).join(''))
  const parts: string[] = []
  let n = 0
  while (n < 4 * MB) { const w = words[r() % words.length] as string; parts.push(w, r() % 12 === 0 ? '\n' : ' '); n += w.length + 1 }
  return Buffer.from(parts.join(''))
}

/** One layer directory: `count` files of about `size` bytes; `randomShare` of each file is incompressible. */
function layerDir (root: string, name: string, count: number, size: number, randomShare: number, text: Buffer, seed: number): string {
  const r = rng(seed)
  const dir = join(root, name)
  for (let i = 0; i < count; i++) {
    const sub = join(dir, 'usr', 'share', name, `d${i % 100}`)
    if (i < 100) mkdirSync(sub, { recursive: true })
    const len = Math.max(1, Math.floor(size * (0.5 + (r() % 1000) / 1000)))
    const off = r() % (text.length - len)
    const buf = Buffer.from(text.subarray(off, off + len))
    const rand = Math.floor(len * randomShare)
    for (let j = 0; j < rand; j += 4) buf.writeUInt32LE(r(), Math.min(j, len - 4))
    writeFileSync(join(sub, `f${i}`), buf)
  }
  return dir
}

const tarOf = (dir: string): Buffer => execFileSync('tar', ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '-C', dir, '-cf', '-', '.'], { maxBuffer: 512 * MB })

let lastCpu = 0

/** Wall-clock seconds of one run; its CPU seconds (user + sys, from /usr/bin/time) go to lastCpu. */
function timeIt (cmd: string, args: string[], env?: Record<string, string>): number {
  const t0 = now()
  const r = spawnSync('/usr/bin/time', ['-f', 'cpu %U %S', cmd, ...args], { env: env ?? process.env, stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 64 * MB })
  const dt = now() - t0
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${String(r.status)}): ${r.stderr.toString()}`)
  const m = /cpu ([\d.]+) ([\d.]+)\s*$/.exec(r.stderr.toString())
  lastCpu = m === null ? NaN : Number(m[1]) + Number(m[2])
  return dt
}

async function main (): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'enroot-bench-import-'))
  const reg = await startRegistry({ dir: join(work, 'registry') })
  try {
    process.stderr.write('building the image…\n')
    const text = corpus()
    const specs: Array<[string, number, number, number]> = [
      // name, files, bytes per file, incompressible share
      ['small', 7000, 3000, 0.05],
      ['medium', 3500, 20_000, 0.1],
      ['large', 24, 4 * MB, 0.3],
      ['docs', 200, 200_000, 0]
    ]
    const layers: LayerInput[] = []
    let raw = 0
    let files = 0
    specs.forEach(([name, count, size, share], i) => {
      const tar = tarOf(layerDir(join(work, 'rootfs'), name, count, size, share, text, 11 + i))
      raw += tar.length
      files += count
      layers.push({ tar, compression: 'gzip' })
    })
    rmSync(join(work, 'rootfs'), { recursive: true, force: true })
    const layout = writeOciLayout(join(work, 'oci'), 'v1', { layers, config: { Env: ['PATH=/usr/bin:/bin'], Cmd: ['sh'] } })
    await pushLayout(layout, reg, 'bench/image:v1')
    const blobs = (layout.manifests[0]?.layers ?? []).map(b => join(layout.dir, 'blobs', 'sha256', b.digest.slice(7)))
    const compressed = blobs.reduce((n, b) => n + statSync(b).size, 0)

    // The floor: decompressing every layer once, the least any importer must do.
    const measureFloor = (): number => blobs.reduce((n, b) => n + timeIt('sh', ['-c', `gzip -dc < '${b}' > /dev/null`]), 0)

    const cache = join(work, 'cache')
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/',
      ENROOT_CACHE_PATH: cache, ENROOT_TEMP_PATH: join(work, 'tmp'), ENROOT_DATA_PATH: join(work, 'data'),
      ENROOT_CONFIG_PATH: join(work, 'config'), ENROOT_RUNTIME_PATH: join(work, 'run'), ENROOT_ALLOW_HTTP: 'y'
    }
    if (process.env.ENROOT_SQUASH_OPTIONS !== undefined) env.ENROOT_SQUASH_OPTIONS = process.env.ENROOT_SQUASH_OPTIONS
    mkdirSync(env.ENROOT_TEMP_PATH as string)
    const uri = `docker://${reg.host}/bench/image:v1`
    const imp = (out: string): number => timeIt(process.execPath, [ENROOT, 'import', '-o', join(work, out), uri], env)

    const runs = Math.max(1, Number(process.env.BENCH_COLD_RUNS ?? 3))
    const floors: number[] = []
    const colds: number[] = []
    const coldCpus: number[] = []
    for (let i = 0; i < runs; i++) {
      rmSync(cache, { recursive: true, force: true })
      mkdirSync(cache, { mode: 0o700 })
      chmodSync(cache, 0o700)
      const fl = measureFloor()
      const c = imp(`cold${i}.sqsh`)
      floors.push(fl)
      colds.push(c)
      coldCpus.push(lastCpu)
      process.stderr.write(`  run ${i + 1}: floor ${fl.toFixed(3)} s, cold ${c.toFixed(3)} s (${(c / fl).toFixed(2)} ×), load ${(loadavg()[0] ?? 0).toFixed(1)}\n`)
    }
    const floor = median(floors)
    const cold = median(colds)
    const coldCpu = median(coldCpus)
    const ratio = median(colds.map((c, i) => c / (floors[i] as number)))
    const warmCpus: number[] = []
    const warm = [1, 2, 3, 4, 5].map(i => { const w = imp(`warm${i}.sqsh`); warmCpus.push(lastCpu); return w }).sort((a, b) => a - b)
    warmCpus.sort((a, b) => a - b)
    // The same warm import from a cache other users can read: the output must be a copy.
    chmodSync(cache, 0o755)
    const warmCopy = imp('warm-copy.sqsh')
    const version = timeIt(process.execPath, [ENROOT, 'version'], env)
    const versionCpu = lastCpu
    const load = loadavg()[0] ?? 0
    const defaultOptions = SETTINGS.find(x => x.key === 'ENROOT_SQUASH_OPTIONS')?.confDefault ?? '?'

    const f = (s: number): string => `${s.toFixed(3)} s`
    process.stdout.write([
      `image: ${layers.length} gzip layers, ${files} files, ${(raw / MB).toFixed(0)} MB uncompressed, ${(compressed / MB).toFixed(0)} MB compressed, squashfs ${(statSync(join(work, 'cold0.sqsh')).size / MB).toFixed(0)} MB`,
      `squash options: ${env.ENROOT_SQUASH_OPTIONS ?? `${defaultOptions} (the default)`}`,
      `floor (gzip -dc of the layers): ${f(floor)}  (median of ${runs}: ${floors.map(x => x.toFixed(2)).join(', ')})`,
      `cold import:                    ${f(cold)}  (median of ${runs}: ${colds.map(x => x.toFixed(2)).join(', ')}); cpu ${f(coldCpu)}`,
      `cold / floor:                   ${ratio.toFixed(2)}  (median of the per-run ratios; goal ≤ 1.3)`,
      `warm import (median of 5):      ${f(warm[2] as number)}  (min ${f(warm[0] as number)}; goal ≤ 0.2 s); cpu median ${f(warmCpus[2] as number)}`,
      `warm import, shared cache copy: ${f(warmCopy)}`,
      `enroot version (process start): ${f(version)}; cpu ${f(versionCpu)}`,
      `load average during the run:    ${load.toFixed(1)} on ${availableParallelism()} CPUs (timings are only meaningful on a quiet machine)`,
      ''
    ].join('\n'))
  } finally {
    await reg.stop()
    rmSync(work, { recursive: true, force: true })
  }
}

await main()
