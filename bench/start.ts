// `enroot start NAME true` and `enroot start IMAGE.sqsh true` against floors measured in the same run:
// `node -e 0` (the interpreter alone) and `unshare -Urm true` (the kernel work alone). Medians of N runs.
// Goal: start NAME ≤ node -e 0 + 20 ms.
//
//   npm run build && npm run build:native && node --import ./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/start.ts [N]
//
// As root it runs the product as the test user (test/helpers/env.ts); otherwise as the caller. Needs
// busybox-static, squashfs-tools and squashfuse. Everything is built under $TMPDIR and removed at the end.
import { spawnSync } from 'node:child_process'
import { mkdirSync, rmSync } from 'node:fs'
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

function median (cmd: string, args: string[]): number {
  once(cmd, args)   // warm the page cache
  const xs = Array.from({ length: N }, () => once(cmd, args)).sort((a, b) => a - b)
  return xs[Math.floor(xs.length / 2)] as number
}

try {
  const rootfs = buildRootfs(join(base, 'rootfs'))
  const image = squashRootfs(rootfs, join(base, 'bench.sqsh'))
  // The engine alone (no CLI, config, plan or built-in hooks): the test driver runs a prepared plan.
  const planFile = writePlan(base, makePlan(base, rootfs, ['true']))
  mkdirSync(join(base, 'work'), { recursive: true })
  once(process.execPath, [ENROOT, 'create', '-n', 'bench', image])
  const rows: Array<[string, number]> = [
    ['node -e 0', median(process.execPath, ['-e', '0'])],
    ['unshare -Urm true', median('unshare', ['-Urm', 'true'])],
    ['engine only (run-plan) true', median(process.execPath, [DRIVER, planFile])],
    ['enroot version', median(process.execPath, [ENROOT, 'version'])],
    ['enroot start NAME true', median(process.execPath, [ENROOT, 'start', 'bench', 'true'])],
    ['enroot start IMAGE.sqsh true', median(process.execPath, [ENROOT, 'start', image, 'true'])]
  ]
  const node = rows[0]?.[1] ?? 1
  process.stdout.write(`median of ${N} runs\n`)
  for (const [name, ms] of rows) process.stdout.write(`${name.padEnd(30)} ${ms.toFixed(1).padStart(8)} ms  ${(ms / node).toFixed(2)} × node -e 0\n`)
  const name = rows[4]?.[1] ?? 0
  process.stdout.write(`goal start NAME ≤ node -e 0 + 20 ms: ${(name - node).toFixed(1)} ms over → ${name - node <= 20 ? 'met' : 'NOT met'}\n`)
} finally {
  for (const c of cleanups) c()
  rmSync(base, { recursive: true, force: true })
}
