// Not a test: the measurement behind doc/slurm.md's "Root filesystem" numbers. Times warm
// `srun -N3 --container-image=REG#IMAGE true` on the suite's cluster for each root filesystem mode
// (extract into node-local scratch vs. the cached squashfs mounted directly) on busybox and on a ~200 MB
// image of many small files (/usr/share/doc + /usr/share/man). Optionally an older launcher
// (OLD_LAUNCHER=/path/bin/enroot) for a before/after. Run as root:
//   npx tap --disable-coverage --reporter=tap test/slurm/measure-rootfs.ts   (or any TS runner)
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { buildShim, startCluster, NODE_LOCAL } from '../helpers/slurm-cluster.js'
import { startRegistry } from '../helpers/registry.js'
import { busyboxImage, writeOciLayout, pushLayout, BUSYBOX_ENV } from '../helpers/oci-image.js'
import { ENROOT } from '../helpers/env.js'

const RUNS = Number(process.env.RUNS ?? 5)
// NEW_LAUNCHER: a private copy of the launcher, so that a rebuild of dist/ or the addon mid-run is harmless.
const LAUNCHER_UNDER_TEST = process.env.NEW_LAUNCHER ?? ENROOT
const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)] as number }

t.test('rootfs modes', async t => {
  const so = buildShim()
  const cluster = await startCluster()
  const registry = await startRegistry({ dir: join(cluster.dir, 'registry') })
  t.teardown(async () => { await registry.stop(); await cluster.stop() })
  await pushLayout(writeOciLayout(join(cluster.dir, 'oci-busybox'), 'latest', busyboxImage()), registry, 'busybox:latest')
  const bigTar = execFileSync('tar', ['--owner=0', '--group=0', '-C', '/usr/share', '-cf', '-', 'doc', 'man'], { maxBuffer: 1 << 30 })
  await pushLayout(writeOciLayout(join(cluster.dir, 'oci-big'), 'latest', {
    layers: [...busyboxImage().layers, { tar: bigTar, compression: 'gzip' }], config: { Env: BUSYBOX_ENV }
  }), registry, 'big:latest')
  const env = { XDG_RUNTIME_DIR: `${NODE_LOCAL}/run`, XDG_DATA_HOME: `${NODE_LOCAL}/data`, XDG_CACHE_HOME: `${NODE_LOCAL}/cache`, TMPDIR: `${NODE_LOCAL}/tmp` }
  await cluster.srun(['-N3', 'mkdir', '-p', `${NODE_LOCAL}/data/enroot`, `${NODE_LOCAL}/run`, `${NODE_LOCAL}/cache`, `${NODE_LOCAL}/tmp`])
  const modes: Array<[string, string]> = [
    ['extract (unsquashfs to node-local scratch)', `launcher=${LAUNCHER_UNDER_TEST} use_squashfuse=0`],
    ['squashfuse (cached squashfs, overlay + tmpfs)', `launcher=${LAUNCHER_UNDER_TEST} use_squashfuse=1`]
  ]
  if (process.env.OLD_LAUNCHER !== undefined) modes.unshift(['old launcher (enroot subprocesses, extract)', `launcher=${process.env.OLD_LAUNCHER}`])
  // The busybox image as a squashfs file on the shared filesystem: no registry, no cache (before/after).
  const file = join(cluster.shared, 'busybox.sqsh')
  cluster.setPlugstack(`required ${so} launcher=${LAUNCHER_UNDER_TEST} runtime_path=${NODE_LOCAL}/pyxis allow_http=1\n`)
  const saved = await cluster.srun(['-N1', `--container-image=${registry.host}#busybox`, `--container-save=${file}`, 'true'], { env, timeoutMs: 600_000 })
  if (saved.status !== 0 || !existsSync(file)) throw new Error(`--container-save failed: ${saved.stderr}`)
  const rows: string[] = []
  for (const image of (process.env.IMAGES ?? 'file,busybox,big').split(',')) {
    for (const [label, args] of modes) {
      if (label.startsWith('old') && image !== 'file') continue
      cluster.setPlugstack(`required ${so} ${args} runtime_path=${NODE_LOCAL}/pyxis allow_http=1\n`)
      const times: number[] = []
      for (let i = 0; i <= RUNS; i++) {
        const began = process.hrtime.bigint()
        const r = await cluster.srun(['-N3', `--container-image=${image === 'file' ? file : `${registry.host}#${image}`}`, 'true'], { env, timeoutMs: 600_000 })
        const ms = Number(process.hrtime.bigint() - began) / 1e6
        if (r.status !== 0) throw new Error(r.stderr)
        if (i > 0) times.push(ms) // the first run fills the caches
      }
      rows.push(`${image.padEnd(8)} ${label.padEnd(48)} median ${median(times).toFixed(0).padStart(6)} ms  (${times.map(x => x.toFixed(0)).join(', ')})`)
      t.comment(rows[rows.length - 1])
    }
  }
  t.comment(`\n${rows.join('\n')}`)
  t.pass()
})
