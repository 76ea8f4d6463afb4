// The ASan + UBSan build of the shim (make -C spank asan) on the suite's cluster: loaded by srun and
// by slurmstepd (both run with the sanitizer runtime preloaded), it validates options, launches through
// the stand-in launcher, joins, tears down, and no sanitizer reports a thing.
import t from 'tap'
import { copyFileSync, chmodSync, chownSync, mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { execFileSync } from 'node:child_process'
import { buildShim, startCluster, clusterUnavailableReason, type Cluster } from '../helpers/slurm-cluster.js'
import { requireFeature, testUser, REPO } from '../helpers/env.js'

function libasan (): string | undefined {
  try {
    const p = execFileSync('cc', ['-print-file-name=libasan.so'], { encoding: 'utf8' }).trim()
    return p.startsWith('/') ? p : undefined
  } catch { return undefined }
}

const why = clusterUnavailableReason()
const asan = libasan()
if (requireFeature(t, 'Slurm cluster', why === undefined, why) && requireFeature(t, 'the ASan runtime (libasan)', asan !== undefined)) {
  let cluster: Cluster
  let reports: string
  let sanitizerEnv: Record<string, string>
  t.before(async () => {
    const so = buildShim('spank_enroot_asan.so')
    reports = mkdtempSync(join('/tmp', 'enroot-asan-'))
    chmodSync(reports, 0o1777)
    sanitizerEnv = {
      LD_PRELOAD: asan as string,
      // The host programs are not ours: their leaks are not our findings.
      ASAN_OPTIONS: `detect_leaks=0:abort_on_error=1:log_path=${reports}/asan`,
      UBSAN_OPTIONS: `print_stacktrace=1:halt_on_error=1:log_path=${reports}/ubsan`
    }
    cluster = await startCluster({ nodes: 2, daemonEnv: sanitizerEnv })
    const launcher = join(cluster.shared, 'container-launcher.sh')
    copyFileSync(join(REPO, 'test', 'slurm', 'fixtures', 'container-launcher.sh'), launcher)
    chmodSync(launcher, 0o755)
    cluster.setPlugstack(`required ${so} launcher=${launcher}\n`)
  })
  t.teardown(async () => { await cluster?.stop(); rmSync(reports, { recursive: true, force: true }) })

  const srun = async (args: string[], env: Record<string, string> = {}): ReturnType<Cluster['srun']> =>
    await cluster.srun(args, { env: { ...sanitizerEnv, ...env } })

  t.test('validates options under the sanitizers', async t => {
    const bad = [['--container-mounts=/a:/b,devpts:/x'], ['--container-name=x:bogus'], ['--container-unshare=net,,ipc'],
      ['--container-image=a', '--container-image=b'], ['--container-env=A,,B'], ['--container-save=/d/']]
    for (const args of bad) {
      const r = await srun(['-N1', ...args, 'true'])
      t.not(r.status, 0, args.join(' '))
      t.match(r.stderr, /srun: error: enroot: /)
    }
    const ok = await srun(['-N2', 'hostname'])
    t.equal(ok.status, 0, ok.stderr)
    const ignored = await srun(['-N1', '--container-workdir=/x', '--container-mounts=/a:/b:ro+rprivate,tmpfs:/t', 'true'], { PYXIS_CONTAINER_ENV: 'A,B,A' })
    t.equal(ignored.status, 0, ignored.stderr)
  })

  t.test('runs the whole step protocol under the sanitizers', async t => {
    const u = testUser()
    const dir = join(cluster.shared, 'rec')
    mkdirSync(dir)
    chownSync(dir, u.uid, u.gid)
    const r = await srun(['-N2', '-n3', '--container-image=fake', '--container-mounts=/tmp:/mnt:ro', '--container-env=X', 'sh', '-c', 'echo $(hostname) $SLURM_PROCID'],
      { FAKE_RECORD_DIR: dir, X: 'x' })
    t.equal(r.status, 0, r.stderr)
    t.equal(r.stdout.trim().split('\n').length, 3)
  })

  t.test('no sanitizer report was written', async t => {
    const files = readdirSync(reports)
    t.same(files, [], files.map(f => readFileSync(join(reports, f), 'utf8')).join('\n'))
  })
}
