// The README's first command, end to end, as CI can run it: `bash scripts/demo.sh` (setup, build, registry
// on 127.0.0.1:5000, 3-node cluster with spank_enroot.so), then the srun a person would type on the cluster
// it leaves running, then `bash scripts/demo.sh stop`. Needs root (like the demo itself); under
// ENROOT_TEST_MUST_WORK=1 anything missing fails instead of skipping.
// It restarts a demo cluster a person may have running, and stops it at the end.
import t from 'tap'
import { spawn, execFileSync } from 'node:child_process'
import { connect } from 'node:net'
import { join } from 'node:path'
import { requireFeature, runAsUser, testUser, IS_ROOT, REPO, type RunResult } from './helpers/env.js'
import { clusterUnavailableReason } from './helpers/slurm-cluster.js'

const SLURM_CONF = '/var/tmp/enroot-demo/slurm/slurm.conf'
const IMAGE = '127.0.0.1:5000#busybox'

/** bash scripts/demo.sh ARGS as root, output collected (the daemons it starts detach from our pipes). */
async function demo (args: string[], timeoutMs: number): Promise<RunResult> {
  const env = { ...process.env }
  delete env.NODE_OPTIONS // tap's loaders are not for the product
  return await new Promise((resolve, reject) => {
    const child = spawn('bash', [join(REPO, 'scripts', 'demo.sh'), ...args], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    const timer = setTimeout(() => { stderr += '\n[demo.test] timed out, killed\n'; child.kill('SIGKILL') }, timeoutMs)
    child.on('error', reject)
    child.on('close', (status, signal) => { clearTimeout(timer); resolve({ status, signal, stdout, stderr }) })
  })
}

const listening = async (port: number): Promise<boolean> => await new Promise(resolve => {
  const s = connect({ host: '127.0.0.1', port })
  s.once('connect', () => { s.destroy(); resolve(true) })
  s.once('error', () => resolve(false))
})

const why = IS_ROOT ? clusterUnavailableReason() : 'the demo runs as root'
if (requireFeature(t, 'the demo (root, Slurm, docker-registry)', why === undefined, why)) {
  const user = testUser()
  const srun = async (args: string[]): Promise<RunResult> => await runAsUser('srun', args, {
    cwd: user.home,
    env: { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: user.home, USER: user.name, LANG: 'C.UTF-8', SLURM_CONF, PWD: user.home }
  })
  let started = false
  t.teardown(async () => { if (started) await demo(['stop'], 60_000) })

  t.test('bash scripts/demo.sh starts everything and shows three nodes from inside the container', async t => {
    const r = await demo([], 540_000)
    started = true
    t.equal(r.status, 0, `demo.sh failed:\n${r.stdout.slice(-4000)}\n${r.stderr.slice(-4000)}`)
    t.match(r.stdout, /demo: OK: 3 nodes answered from inside the container/)
    t.match(r.stdout, /^node1$/m)
    t.match(r.stdout, /^node2$/m)
    t.match(r.stdout, /^node3$/m)
    // the commands a person uses next are printed
    t.match(r.stdout, `SLURM_CONF=${SLURM_CONF} srun -N3 --container-image=${IMAGE} hostname`)
    t.match(r.stdout, /demo\.sh stop/)
  })

  t.test('the cluster it leaves running takes the README command, as the unprivileged user', async t => {
    const r = await srun(['-N3', `--container-image=${IMAGE}`, 'hostname'])
    t.equal(r.status, 0, r.stderr)
    t.same(r.stdout.trim().split('\n').sort(), ['node1', 'node2', 'node3'])
    // from inside the image: there /bin/hostname is busybox (the host's is coreutils/inetutils)
    const inside = await srun(['-N3', `--container-image=${IMAGE}`, 'sh', '-c', 'echo $(hostname) $(readlink /bin/hostname) $(id -un)'])
    t.equal(inside.status, 0, inside.stderr)
    t.same(inside.stdout.trim().split('\n').sort(), ['node1', 'node2', 'node3'].map(n => `${n} busybox ${user.name}`))
  })

  t.test('a second run restarts what the first left and succeeds again, even with every node allocated', async t => {
    const before = execFileSync('ss', ['-Hltn', 'sport = :5000'], { encoding: 'utf8' })
    t.not(before.trim(), '', 'the registry of the first run still listens')
    // an allocation the user left behind: it must not come back with the restarted slurmctld
    const held = await runAsUser('salloc', ['-N3', '--no-shell'], {
      cwd: user.home,
      env: { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: user.home, USER: user.name, LANG: 'C.UTF-8', SLURM_CONF }
    })
    t.equal(held.status, 0, held.stderr)
    const r = await demo([], 300_000)
    t.equal(r.status, 0, `${r.stdout.slice(-4000)}\n${r.stderr.slice(-4000)}`)
    t.match(r.stdout, /demo: stopping/)
    t.match(r.stdout, /demo: OK: 3 nodes answered from inside the container/)
  })

  t.test('bash scripts/demo.sh stop stops every daemon', async t => {
    const r = await demo(['stop'], 60_000)
    t.equal(r.status, 0, r.stderr)
    started = false
    t.equal(await listening(5000), false, 'nothing listens on 127.0.0.1:5000')
    const st = await demo(['status'], 60_000)
    t.match(st.stdout, /nothing running/)
  })
}
