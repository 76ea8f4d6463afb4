// `enroot start NAME true` and `enroot start IMAGE.sqsh true` (busybox, and a large image: ≥ 1 GB in ≥ 50,000
// files) against floors measured in the same run: `node -e 0` (the interpreter alone) and `unshare -Urm true`
// (the kernel work alone). Medians of N runs, with the load average, since a busy machine moves them all.
// Goals: start NAME ≤ node -e 0 + 20 ms; the large image starts within ± 20 ms of busybox (squashfuse reads
// lazily, nothing is extracted).
//
// The large image is built once (about a minute) and cached as /var/tmp/enroot-bench-large-v2.sqsh
// (ENROOT_BENCH_LARGE overrides the path); delete it to rebuild.
//
//   npm run build && npm run build:native && node --import ./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/start.ts [N]
//
// As root it runs the product as the test user (test/helpers/env.ts); otherwise as the caller. Needs
// busybox-static, squashfs-tools and squashfuse. Everything is built under $TMPDIR and removed at the end.
import { spawnSync, execFileSync } from 'node:child_process'
import { randomFillSync } from 'node:crypto'
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ENROOT, IS_ROOT, testUser, userTmp, enrootEnv } from '../test/helpers/env.js'
import { buildRootfs, squashRootfs } from '../test/helpers/rootfs.js'
import { DRIVER, makePlan, writePlan } from '../test/runtime/harness.js'

const N = Number(process.argv[2] ?? 15)
const cleanups: Array<() => void> = []
const base = userTmp({ fail: (m: string) => { throw new Error(m) }, skip: () => {}, teardown: (fn: () => void | Promise<void>) => { cleanups.push(() => { void fn() }) } })
const env = enrootEnv(base)
const u = IS_ROOT ? testUser() : undefined

function once (cmd: string, args: string[]): number {
  const t0 = performance.now()
  const r = spawnSync(cmd, args, { env, stdio: ['ignore', 'ignore', 'pipe'], ...(u !== undefined ? { uid: u.uid, gid: u.gid } : {}) })
  const ms = performance.now() - t0
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${String(r.status ?? r.signal)}: ${r.stderr.toString()}`)
  return ms
}

/**
 * Medians of N rounds; each round runs every row once, in order, so that a change of load during the
 * run (another job on this 2-core machine) moves every row alike instead of a few.
 */
function medians (rows: Array<[string, string, string[]]>): Array<[string, number]> {
  for (const [, cmd, args] of rows) once(cmd, args)   // warm the page cache
  const times = rows.map(() => [] as number[])
  for (let i = 0; i < N; i++) rows.forEach(([, cmd, args], j) => times[j]?.push(once(cmd, args)))
  return rows.map(([name], j) => {
    const xs = (times[j] ?? []).sort((a, b) => a - b)
    return [name, xs[Math.floor(xs.length / 2)] as number]
  })
}

/** busybox plus 250 directories × 204 files of 21 KiB random data (51,000 files, 1.05 GiB), cached. */
function largeImage (busybox: string): string {
  const path = process.env.ENROOT_BENCH_LARGE ?? '/var/tmp/enroot-bench-large-v2.sqsh'
  if (existsSync(path)) return path
  process.stderr.write(`building ${path} (once)...\n`)
  const src = mkdtempSync('/var/tmp/enroot-bench-src-')
  try {
    cpSync(busybox, src, { recursive: true, verbatimSymlinks: true })
    const buf = Buffer.alloc(21 * 1024)
    for (let d = 0; d < 250; d++) {
      const dir = join(src, 'usr', 'share', 'bench', `d${String(d).padStart(3, '0')}`)
      mkdirSync(dir, { recursive: true })
      for (let f = 0; f < 204; f++) writeFileSync(join(dir, `f${String(f).padStart(3, '0')}`), randomFillSync(buf))
    }
    // The same compression as the busybox image (gzip: the busybox binary is read through the same
    // decompression in both); the random data stays uncompressed anyway. No duplicate scan (a minute of hashing).
    execFileSync('mksquashfs', [src, `${path}.tmp`, '-noappend', '-quiet', '-no-progress', '-comp', 'gzip', '-no-duplicates', '-all-root'], { stdio: 'ignore' })
    chmodSync(`${path}.tmp`, 0o644)
    renameSync(`${path}.tmp`, path)
  } finally {
    rmSync(src, { recursive: true, force: true })
  }
  return path
}

try {
  const rootfs = buildRootfs(join(base, 'rootfs'))
  const image = squashRootfs(rootfs, join(base, 'bench.sqsh'))
  const large = largeImage(rootfs)
  // The engine alone (no CLI, config, plan or built-in hooks): the test driver runs a prepared plan.
  const planFile = writePlan(base, makePlan(base, rootfs, ['true']))
  mkdirSync(join(base, 'work'), { recursive: true })
  once(process.execPath, [ENROOT, 'create', '-n', 'bench', image])
  const rows = medians([
    ['node -e 0', process.execPath, ['-e', '0']],
    ['unshare -Urm true', 'unshare', ['-Urm', 'true']],
    ['engine only (run-plan) true', process.execPath, [DRIVER, planFile]],
    ['enroot version', process.execPath, [ENROOT, 'version']],
    ['enroot start NAME true', process.execPath, [ENROOT, 'start', 'bench', 'true']],
    ['enroot start IMAGE.sqsh true', process.execPath, [ENROOT, 'start', image, 'true']],
    ['enroot start LARGE.sqsh true', process.execPath, [ENROOT, 'start', large, 'true']]
  ])
  const node = rows[0]?.[1] ?? 1
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')
  process.stdout.write(`median of ${N} runs; load average ${load} on ${String(execFileSync('nproc').toString().trim())} CPUs\n`)
  for (const [name, ms] of rows) process.stdout.write(`${name.padEnd(30)} ${ms.toFixed(1).padStart(8)} ms  ${(ms / node).toFixed(2)} × node -e 0  ${(ms - node >= 0 ? '+' : '') + (ms - node).toFixed(1)} ms\n`)
  const name = rows[4]?.[1] ?? 0
  const small = rows[5]?.[1] ?? 0
  const big = rows[6]?.[1] ?? 0
  process.stdout.write(`goal start NAME ≤ node -e 0 + 20 ms: ${(name - node).toFixed(1)} ms over → ${name - node <= 20 ? 'met' : 'NOT met'}\n`)
  process.stdout.write(`goal LARGE within ± 20 ms of busybox: ${(big - small).toFixed(1)} ms → ${Math.abs(big - small) <= 20 ? 'met' : 'NOT met'}\n`)
} finally {
  for (const c of cleanups) c()
  rmSync(base, { recursive: true, force: true })
}
