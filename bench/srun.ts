// srun with containers against srun without, on a 3-node cluster this script starts (the suite's
// test/helpers/slurm-cluster.ts, with spank_enroot.so configured as in the demo: scripts/demo-site.ts) and a
// loopback registry holding the busybox test image. Every step runs inside one allocation (salloc
// --no-shell, then srun --jobid), so scheduling is not measured, as slurm-notes.md does for `srun true`.
// Medians of N runs, all in the same run:
//   srun -N1|-N3 true                                           the floor
//   cold:  --container-image=REG#busybox true                   empty cache, no container (wiped before each run)
//   warm:  --container-image=REG#busybox true                   image in the node's cache, fresh unnamed container
//   named: --container-name=bench true                          the named container's filesystem is reused
// Goals (the issue): cold -N3 ≤ 530 ms (0.25 × pyxis's 2,116 ms), warm -N3 ≤ `srun -N3 true` + 100 ms,
// time(-N3)/time(-N1) ≤ 1.2.
//
//   as root, after scripts/setup.sh:
//   node --import ./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/srun.ts [N]
//   (ENROOT_SQUASH_OPTIONS=... in the environment is passed to the launcher as site configuration)
//   or: npx tsc -p tsconfig.tools.json; node .build/bench/srun.js [N]
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, chmodSync, readFileSync, cpSync, symlinkSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { testUser } from '../test/helpers/env.js'
import { startCluster, clusterUnavailableReason, type Cluster } from '../test/helpers/slurm-cluster.js'
import { startRegistry, registryAvailable, type TestRegistry } from '../test/helpers/registry.js'
import { busyboxImage, writeOciLayout, pushLayout } from '../test/helpers/oci-image.js'
import { siteLauncher, plugstackLine } from '../scripts/demo-site.js'

const N = Number(process.argv[2] ?? 7)
const PYXIS_COLD_N3_MS = 2116
// the checkout, whether run from sources or from .build/bench
const REPO = ((): string => {
  let d = dirname(fileURLToPath(import.meta.url))
  while (!existsSync(join(d, 'package.json')) || !existsSync(join(d, 'bin', 'enroot'))) {
    if (d === '/') throw new Error('cannot find the checkout above bench/')
    d = dirname(d)
  }
  return d
})()

if (process.getuid?.() !== 0) throw new Error('bench/srun needs root (it starts a Slurm cluster)')
const why = clusterUnavailableReason() ?? (registryAvailable().ok ? undefined : registryAvailable().why)
if (why !== undefined) throw new Error(`bench/srun: ${why}`)

const user = testUser()
const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)] as number }
const fmt = (ms: number): string => `${ms.toFixed(0).padStart(5)} ms`

let cluster: Cluster | undefined
let registry: TestRegistry | undefined
const work = mkdtempSync('/var/tmp/enroot-bench-srun-')
chmodSync(work, 0o755)
let jobId = ''

/** A private copy of what the nodes run (launcher, its configuration and drop-ins, native helper, plugin):
 *  in a shared checkout a rebuild of dist/ or spank/ during the run would otherwise fail or skew steps. */
function snapshot (dest: string): string {
  for (const p of ['package.json', 'bin', 'dist', 'etc', 'hooks.d', 'mounts.d', 'environ.d', 'native/build/Release/enroot_native.node', 'spank/spank_enroot.so']) {
    if (existsSync(join(REPO, p))) cpSync(join(REPO, p), join(dest, p), { recursive: true })
  }
  symlinkSync(join(REPO, 'node_modules'), join(dest, 'node_modules'))
  return dest
}

/** One srun step inside the allocation, as the user; wall time from spawn to exit. */
function step (args: string[]): number {
  const c = cluster as Cluster
  const t0 = performance.now()
  const r = spawnSync('srun', [`--jobid=${jobId}`, ...args], {
    encoding: 'utf8',
    cwd: c.shared,
    uid: user.uid,
    gid: user.gid,
    timeout: 120_000,
    env: { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: user.home, USER: user.name, LANG: 'C.UTF-8', SLURM_CONF: c.conf, PWD: c.shared }
  })
  const ms = performance.now() - t0
  if (r.status !== 0) throw new Error(`srun ${args.join(' ')} exited ${String(r.status ?? r.signal)}:\n${r.stderr}`)
  return ms
}

/** Empty cache and no container on every node: the launcher's per-user node-local storage (demo-site.ts). */
function wipe (): void {
  const c = cluster as Cluster
  for (const n of c.nodeNames) rmSync(join(c.nodeLocal(n), 'enroot', String(user.uid)), { recursive: true, force: true })
}

interface Row { what: string, n1?: number, n3?: number, err?: string }
const rows: Row[] = []

function measure (what: string, args: (nodes: number) => string[], before: () => void = () => {}, runs = N): Row {
  const row: Row = { what }
  try {
    for (const nodes of [1, 3]) {
      const xs: number[] = []
      for (let i = 0; i < runs; i++) { before(); xs.push(step(args(nodes))) }
      if (nodes === 1) row.n1 = median(xs); else row.n3 = median(xs)
    }
  } catch (e) { row.err = e instanceof Error ? e.message : String(e) }
  rows.push(row)
  process.stderr.write(`bench: ${what}: ${row.err === undefined ? 'done' : `FAILED ${row.err.split('\n').slice(0, 6).join(' | ')}`}\n`)
  return row
}

try {
  const began = Date.now()
  registry = await startRegistry({ dir: join(work, 'registry') })
  const layout = writeOciLayout(join(work, 'oci'), 'latest', busyboxImage())
  await pushLayout(layout, registry, 'busybox:latest')
  const image = `${registry.host}#busybox`

  cluster = await startCluster({})
  // ENROOT_SQUASH_OPTIONS in the bench's environment becomes site configuration (to compare compressors)
  const squash = process.env.ENROOT_SQUASH_OPTIONS
  const product = snapshot(join(work, 'product'))
  const launcher = siteLauncher(join(cluster.dir, 'bin'), product, process.execPath, squash === undefined ? {} : { ENROOT_SQUASH_OPTIONS: squash })
  cluster.setPlugstack(plugstackLine(join(product, 'spank', 'spank_enroot.so'), launcher))

  const alloc = await cluster.client('salloc', ['-N3', '--no-shell'], { timeoutMs: 30_000 })
  const m = /Granted job allocation (\d+)/.exec(alloc.stderr + alloc.stdout)
  if (m === null) throw new Error(`salloc failed: ${alloc.stderr}`)
  jobId = m[1] as string

  const img = `--container-image=${image}`
  step(['-N3', 'true']) // first step of the allocation pays for loading plugins and caches
  const base = measure('srun true', n => [`-N${n}`, 'true'])
  const cold = measure('cold --container-image', n => [`-N${n}`, img, 'true'], wipe, Math.min(N, 5))
  wipe()
  try { step(['-N3', img, 'true']) } catch {} // fill every node's cache
  const warm = measure('warm --container-image', n => [`-N${n}`, img, 'true'])
  let named: Row
  try {
    step(['-N3', img, '--container-name=bench', 'true']) // create the named container on every node
    named = measure('named --container-name (reuse)', n => [`-N${n}`, '--container-name=bench', 'true'])
  } catch (e) { named = { what: 'named --container-name (reuse)', err: e instanceof Error ? e.message : String(e) }; rows.push(named) }

  await cluster.client('scancel', [jobId], { timeoutMs: 10_000 })
  const out: string[] = []
  out.push(`srun on a 3-node local cluster (Slurm 22.05, ${N} runs, medians; ${((Date.now() - began) / 1000).toFixed(0)} s in all)` +
    (squash === undefined ? '' : `, site ENROOT_SQUASH_OPTIONS='${squash}'`))
  out.push(`${'step'.padEnd(34)} ${'-N1'.padStart(8)} ${'-N3'.padStart(8)}   -N3/-N1`)
  for (const r of rows) {
    if (r.err !== undefined) { out.push(`${r.what.padEnd(34)} FAILED: ${r.err.split('\n').filter(l => l.trim() !== '').slice(0, 8).join('\n    ')}`); continue }
    out.push(`${r.what.padEnd(34)} ${fmt(r.n1 as number)} ${fmt(r.n3 as number)}   ${((r.n3 as number) / (r.n1 as number)).toFixed(2)}`)
  }
  out.push('goals:')
  const goal = (text: string, value: number | undefined, ok: ((v: number) => boolean) | undefined, show: (v: number) => string): void => {
    const verdict = (v: number): string => ok === undefined ? '(no goal set)' : ok(v) ? 'MET' : 'NOT MET'
    out.push(`  ${text.padEnd(48)} ${value === undefined ? 'n/a (failed)' : `${show(value)}  ${verdict(value)}`}`)
  }
  goal('cold -N3 ≤ 530 ms (0.25 × pyxis 2,116 ms)', cold.n3, v => v <= 530, v => `${v.toFixed(0)} ms = ${(v / PYXIS_COLD_N3_MS).toFixed(2)} × pyxis`)
  const warmOver = warm.n3 === undefined || base.n3 === undefined ? undefined : warm.n3 - base.n3
  goal('warm -N3 ≤ srun -N3 true + 100 ms', warmOver, v => v <= 100, v => `+${v.toFixed(0)} ms`)
  const namedOver = named.n3 === undefined || base.n3 === undefined ? undefined : named.n3 - base.n3
  goal('named reuse -N3 over srun -N3 true', namedOver, undefined, v => `+${v.toFixed(0)} ms`)
  for (const [label, r] of [['cold', cold], ['warm', warm], ['named', named]] as const) {
    goal(`${label} time(-N3)/time(-N1) ≤ 1.2`, r.n1 === undefined || r.n3 === undefined ? undefined : r.n3 / r.n1, v => v <= 1.2, v => v.toFixed(2))
  }
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ')[0] ?? '?'
  out.push(`machine: ${availableParallelism()} CPUs, load average ${load} at the end (timings scale with other work on the machine)`)
  process.stdout.write(`${out.join('\n')}\n`)
} finally {
  await cluster?.stop()
  await registry?.stop()
  rmSync(work, { recursive: true, force: true })
}
