// The shim's options through real srun on the suite's cluster, as the test user: pyxis's names, values,
// validation and messages (pyxis-behaviour.md §1), PYXIS_CONTAINER_* defaults, the activation rule, the
// plugstack arguments (§2), and how the shim calls the per-node launcher (doc/slurm.md). A recording
// launcher stands in for the real one: it notes its argv, environment and identity, then refuses.
import t from 'tap'
import { copyFileSync, chmodSync, readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { buildShim, recordingDir, startCluster, clusterUnavailableReason, type Cluster } from '../helpers/slurm-cluster.js'
import { requireFeature, testUser, REPO } from '../helpers/env.js'

const why = clusterUnavailableReason()
if (requireFeature(t, 'Slurm cluster', why === undefined, why)) {
  let cluster: Cluster
  let so: string
  let launcher: string
  let plugstack: string

  t.before(async () => {
    so = buildShim()
    cluster = await startCluster()
    launcher = join(cluster.shared, 'recording-launcher.sh')
    copyFileSync(join(REPO, 'test', 'slurm', 'fixtures', 'recording-launcher.sh'), launcher)
    chmodSync(launcher, 0o755)
    plugstack = `required ${so} launcher=${launcher}\n`
    cluster.setPlugstack(plugstack)
  })
  t.teardown(async () => { await cluster?.stop() })

  const recorder = (): { dir: string, env: Record<string, string> } => recordingDir(cluster)
  /** What the launcher recorded for one call: argv lines, env lines, identity lines. */
  const recorded = (dir: string, verb = 'slurm-launch'): { argv: string[], env: string[], id: string[] }[] =>
    readdirSync(dir).filter(f => f.endsWith(`.${verb}.argv`)).sort().map(f => {
      const base = join(dir, f.slice(0, -'.argv'.length))
      const lines = (p: string): string[] => { try { return readFileSync(p, 'utf8').split('\n').filter(l => l !== '') } catch { return [] } }
      return { argv: lines(`${base}.argv`), env: lines(`${base}.env`), id: lines(`${base}.id`) }
    })

  t.test('the plugin is inert without container options: srun -N3 hostname', async t => {
    const r = await cluster.srun(['-N3', 'hostname'])
    t.equal(r.status, 0, r.stderr)
    t.same(r.stdout.trim().split('\n').sort(), ['node1', 'node2', 'node3'])
    t.notMatch(r.stderr, /enroot/)
  })

  t.test('srun --help lists the options with their argument forms', async t => {
    const r = await cluster.srun(['--help'])
    for (const opt of ['--container-image=[USER@][REGISTRY#]IMAGE[:TAG]|PATH', '--container-mounts=SRC:DST[:FLAGS][,SRC:DST...]',
      '--container-name=NAME[:FLAG]', '--no-container-mount-home', '--container-readonly', '--container-unshare=']) {
      t.ok(r.stdout.includes(opt), opt)
    }
  })

  const invalid: Array<[string[], string[]]> = [
    [['--container-image='], ['--container-image: argument required']],
    [['--container-image=a', '--container-image=b'], ['--container-image specified multiple times']],
    [['--container-mounts='], ['--container-mounts: argument required']],
    [['--container-mounts=:/x'], ['--container-mounts: invalid format: :/x']],
    [['--container-mounts=/a:'], ['--container-mounts: invalid format: /a:']],
    [['--container-mounts=/a:/b,,/c:/d'], ['--container-mounts: invalid format: ']],
    [['--container-mounts=devpts:/dev/pts'], ['mount source must be a relative path, an absolute path, "tmpfs" or "umount"', 'could not add mount entry: devpts:/dev/pts']],
    [['--container-mounts=/a:mnt'], ['mount target must be a relative path or an absolute path', 'could not add mount entry: /a:mnt']],
    [['--container-workdir='], ['--container-workdir: argument required']],
    [['--container-workdir=/a', '--container-workdir=/b'], ['--container-workdir specified multiple times']],
    [['--container-name='], ['--container-name: argument required']],
    [['--container-name=:exec'], ['--container-name: empty name']],
    [['--container-name=x:bogus'], ['--container-name: flag must be "auto", "create", "exec" or "no_exec"']],
    [['--container-name=x:'], ['--container-name: flag must be "auto", "create", "exec" or "no_exec"']],
    [['--container-name=a', '--container-name=b'], ['--container-name specified multiple times']],
    [['--container-name=a', '--container-name=a:exec'], ['--container-name specified multiple times']],
    [['--container-save='], ['--container-save: argument required']],
    [['--container-save=/tmp/dir/'], ['--container-save: target is a directory']],
    [['--container-save=/a', '--container-save=/b'], ['--container-save specified multiple times']],
    [['--container-mount-home', '--no-container-mount-home'], ['both --container-mount-home and --no-container-mount-home were specified']],
    [['--no-container-remap-root', '--container-remap-root'], ['both --container-remap-root and --no-container-remap-root were specified']],
    [['--container-entrypoint', '--no-container-entrypoint'], ['both --container-entrypoint and --no-container-entrypoint were specified']],
    [['--container-writable', '--container-readonly'], ['both --container-writable and --container-readonly were specified']],
    [['--container-env='], ['--container-env: argument required']],
    [['--container-env=A,,B'], ['--container-env: invalid format: A,,B']],
    [['--container-unshare='], ['--container-unshare: argument required']],
    [['--container-unshare=net,'], ['--container-unshare: empty namespace argument']],
    [['--container-unshare=net,pid'], ["--container-unshare: unknown namespace 'pid'"]]
  ]
  t.test('rejects invalid option values with pyxis\'s messages, before anything runs', async t => {
    const rec = recorder()
    for (const [args, messages] of invalid) {
      const r = await cluster.srun(['-N1', ...args, 'true'], { env: rec.env })
      t.not(r.status, 0, args.join(' '))
      for (const m of messages) t.ok(r.stderr.includes(`enroot: ${m}`), `${args.join(' ')} → ${m}`, { stderr: r.stderr })
    }
    t.same(recorded(rec.dir), [], 'the launcher never ran')
  })

  t.test('accepts the same value twice (Slurm may call an option callback twice)', async t => {
    for (const args of [['--container-image=img', '--container-image=img'], ['--container-name=n:exec', '--container-name=n:exec'],
      ['--container-mount-home', '--container-mount-home'], ['--container-readonly', '--container-readonly']]) {
      const rec = recorder()
      const r = await cluster.srun(['-N1', '--container-image=img', ...args, 'true'], { env: rec.env })
      t.notMatch(r.stderr, /specified multiple times|both --/, args.join(' '))
      t.equal(recorded(rec.dir).length, 1, `${args.join(' ')}: the launcher ran once`)
    }
  })

  t.test('a launcher failure fails the step with its message and its log, once per node', async t => {
    const rec = recorder()
    const r = await cluster.srun(['-N2', '--container-image=img', 'true'], { env: rec.env })
    t.not(r.status, 0)
    t.equal(r.stderr.split('\n').filter(l => l.includes('enroot: fake launcher refused slurm-launch')).length, 2, r.stderr)
    t.match(r.stderr, /enroot: printing launcher log file:/)
    t.match(r.stderr, /enroot: {5}some launcher output on stderr/)
  })

  t.test('calls the launcher as the job user, with a clean process state and the protocol arguments', async t => {
    const rec = recorder()
    const u = testUser()
    const r = await cluster.srun(['-N1', '--container-image=ubuntu:24.04', '--container-mounts=/tmp:/mnt:ro+rprivate,tmpfs:/t,umount:/root,./rel:/rel,/tmp:/mnt:ro+rprivate',
      '--container-workdir=/w', '--container-name=box:create', '--container-save=/tmp/out.sqsh', '--container-env=A,B,A', '--container-entrypoint-log', 'true'],
    { env: { ...rec.env, ENROOT_DATA_PATH: '/elsewhere', ENROOT_SQUASH_OPTIONS: '-noI', NVIDIA_VISIBLE_DEVICES: 'all', NODE_OPTIONS: '--max-old-space-size=64', NODE_EXTRA_CA_CERTS: '/etc/ssl/certs/ca-certificates.crt', UV_THREADPOOL_SIZE: '64' } })
    t.not(r.status, 0)
    const [call] = recorded(rec.dir)
    if (call === undefined) { t.fail(`launcher not called: ${r.stderr}`); return }
    t.equal(call.argv[0], 'slurm-launch')
    for (const a of ['--image=ubuntu:24.04', '--name=box:create', '--workdir=/w', '--save=/tmp/out.sqsh', '--entrypoint=n', '--entrypoint-log',
      '--status-fd=3', '--scope=global', '--cache=per-user', '--runtime-path=/run/pyxis', `--cwd=${cluster.shared}`, '--local-tasks=1', '--total-tasks=1']) {
      t.ok(call.argv.includes(a), a)
    }
    t.same(call.argv.filter(a => a.startsWith('--mount=')), [
      '--mount=/tmp /mnt x-create=auto,rbind,ro,rprivate',
      '--mount=tmpfs /t x-create=dir',
      '--mount=umount /root x-detach',
      '--mount=./rel /rel x-create=auto,rbind'
    ], 'mounts: default flags per source kind, "+" → ",", exact duplicates dropped')
    t.same(call.argv.filter(a => a.startsWith('--env=')), ['--env=A', '--env=B'])
    t.ok(call.argv.some(a => /^--job-id=\d+$/.test(a)) && call.argv.includes('--step-id=0'))
    t.ok(call.id.includes(`uid=${u.uid} gid=${u.gid}`), call.id.join())
    t.ok(call.id.includes('oom=0'), 'oom_score_adj reset to 0')
    t.ok(call.id.includes('fds=0 1 2 3 4 '), `only stdin, the log, and the status fd are open: ${call.id.join()}`)
    t.ok(call.env.includes('ENROOT_SQUASH_OPTIONS=-noI') && call.env.includes('NVIDIA_VISIBLE_DEVICES=all'), 'user ENROOT_*/NVIDIA_* pass')
    t.notOk(call.env.some(l => l.startsWith('ENROOT_DATA_PATH=')), 'enroot path settings are denied')
    t.notOk(call.env.some(l => /^(NODE_|UV_)/.test(l)), 'the job\'s Node settings (NODE_*, UV_*) do not reach the (Node) launcher')
    t.ok(call.env.includes(`SLURM_JOB_UID=${u.uid}`) && call.env.includes(`SLURM_JOB_GID=${u.gid}`))
    t.ok(call.env.includes('PYXIS_RUNTIME_PATH=/run/pyxis'))
    t.notOk(call.env.some(l => /^ENROOT_(MOUNT_HOME|REMAP_ROOT|ROOTFS_WRITABLE|UNSHARE_\w+)=/.test(l)), 'enroot settings untouched unless chosen')
  })

  t.test('the user\'s explicit choices become enroot settings for the launcher', async t => {
    const rec = recorder()
    await cluster.srun(['-N1', '--container-image=img', '--no-container-mount-home', '--container-remap-root', '--container-readonly',
      '--container-unshare=net,uts', '--container-entrypoint', 'true'], { env: rec.env })
    const [call] = recorded(rec.dir)
    t.ok(call !== undefined)
    for (const kv of ['ENROOT_MOUNT_HOME=n', 'ENROOT_REMAP_ROOT=y', 'ENROOT_ROOTFS_WRITABLE=n', 'ENROOT_UNSHARE_NET=y', 'ENROOT_UNSHARE_UTS=y']) t.ok(call?.env.includes(kv), kv)
    t.notOk(call?.env.includes('ENROOT_UNSHARE_IPC=y'))
    t.ok(call?.argv.includes('--entrypoint=y'))
  })

  t.test('PYXIS_CONTAINER_* fill only the options the command line left unset', async t => {
    const cases: Array<{ env: Record<string, string>, args: string[], argv?: string[], noArgv?: string[], envHas?: string[], envLacks?: string[], stderr?: string }> = [
      { env: { PYXIS_CONTAINER_IMAGE: 'envimg' }, args: [], argv: ['--image=envimg'] },
      { env: { PYXIS_CONTAINER_IMAGE: 'envimg' }, args: ['--container-image=cli'], argv: ['--image=cli'], noArgv: ['--image=envimg'] },
      { env: { PYXIS_CONTAINER_NAME: 'n:no_exec', PYXIS_CONTAINER_WORKDIR: '/wd', PYXIS_CONTAINER_SAVE: '/s.sqsh' }, args: [], argv: ['--name=n:no_exec', '--workdir=/wd', '--save=/s.sqsh'] },
      { env: { PYXIS_CONTAINER_MOUNTS: '/a:/b' }, args: ['--container-mounts=/c:/d'], argv: ['--mount=/c /d x-create=auto,rbind'], noArgv: ['--mount=/a /b x-create=auto,rbind'] },
      { env: { PYXIS_CONTAINER_MOUNTS: '/a:/b,devpts:/x' }, args: [], noArgv: ['--mount=/a /b x-create=auto,rbind'], stderr: 'enroot: mount source must be' },
      { env: { PYXIS_CONTAINER_ENV: 'X,Y' }, args: [], argv: ['--env=X', '--env=Y'] },
      { env: { PYXIS_CONTAINER_MOUNT_HOME: 'yes', PYXIS_CONTAINER_REMAP_ROOT: 'N' }, args: [], envHas: ['ENROOT_MOUNT_HOME=y', 'ENROOT_REMAP_ROOT=n'] },
      { env: { PYXIS_CONTAINER_MOUNT_HOME: '0' }, args: ['--container-mount-home'], envHas: ['ENROOT_MOUNT_HOME=y'] },
      { env: { PYXIS_CONTAINER_REMAP_ROOT: 'maybe' }, args: [], envLacks: ['ENROOT_REMAP_ROOT='] },
      { env: { PYXIS_CONTAINER_READONLY: '1' }, args: [], envHas: ['ENROOT_ROOTFS_WRITABLE=n'] },
      { env: { PYXIS_CONTAINER_WRITABLE: 'true', PYXIS_CONTAINER_READONLY: 'true' }, args: [], envHas: ['ENROOT_ROOTFS_WRITABLE=y'] },
      { env: { PYXIS_CONTAINER_ENTRYPOINT: 'y' }, args: [], argv: ['--entrypoint=y'] },
      { env: { PYXIS_CONTAINER_ENTRYPOINT_LOG: '0' }, args: [], noArgv: ['--entrypoint-log'] },
      { env: { PYXIS_CONTAINER_UNSHARE: 'net,ipc' }, args: [], envHas: ['ENROOT_UNSHARE_NET=y', 'ENROOT_UNSHARE_IPC=y'] },
      { env: { PYXIS_CONTAINER_UNSHARE: 'net' }, args: ['--container-unshare=uts'], envHas: ['ENROOT_UNSHARE_UTS=y'], envLacks: ['ENROOT_UNSHARE_NET='] },
      { env: { PYXIS_CONTAINER_UNSHARE: 'bogus' }, args: [], envLacks: ['ENROOT_UNSHARE_'], stderr: "enroot: --container-unshare: unknown namespace 'bogus'" }
    ]
    for (const c of cases) {
      const rec = recorder()
      const image = c.env.PYXIS_CONTAINER_IMAGE !== undefined || c.args.some(a => a.startsWith('--container-image')) ? [] : ['--container-image=img']
      const r = await cluster.srun(['-N1', ...image, ...c.args, 'true'], { env: { ...rec.env, ...c.env } })
      const name = `${JSON.stringify(c.env)} ${c.args.join(' ')}`
      const [call] = recorded(rec.dir)
      if (call === undefined) { t.fail(`${name}: launcher not called\n${r.stderr}`); continue }
      for (const a of c.argv ?? []) t.ok(call.argv.includes(a), `${name}: ${a}`)
      for (const a of c.noArgv ?? []) t.notOk(call.argv.includes(a), `${name}: no ${a}`)
      for (const e of c.envHas ?? []) t.ok(call.env.includes(e), `${name}: ${e}`)
      for (const e of c.envLacks ?? []) t.notOk(call.env.some(l => l.startsWith(e)), `${name}: no ${e}`)
      if (c.stderr !== undefined) t.ok(r.stderr.includes(c.stderr), `${name}: prints ${c.stderr}`)
    }
  })

  t.test('activation rule: without image or name, container options are ignored with one line each', async t => {
    const rec = recorder()
    const r = await cluster.srun(['-N1', '--container-mounts=/a:/b', '--container-workdir=/w', '--container-save=/s', '--no-container-mount-home',
      '--container-remap-root', '--container-entrypoint', '--container-entrypoint-log', '--container-readonly', '--container-env=A', '--container-unshare=net', 'true'],
    { env: rec.env })
    t.equal(r.status, 0, r.stderr)
    const ignored = r.stderr.split('\n').filter(l => l.includes('because neither --container-image nor --container-name is set'))
    t.same(ignored.map(l => l.replace(/^.*enroot: ignoring (\S+) because.*$/, '$1')), ['--container-mounts', '--container-workdir', '--container-save',
      '--[no-]container-mount-home', '--[no-]container-remap-root', '--[no-]container-entrypoint', '--container-entrypoint-log', '--container-readonly'])
    t.same(recorded(rec.dir), [], 'nothing ran')
    const env = await cluster.srun(['-N1', 'true'], { env: { ...rec.env, PYXIS_CONTAINER_WORKDIR: '/w' } })
    t.equal(env.status, 0)
    t.match(env.stderr, /enroot: ignoring --container-workdir because neither --container-image nor --container-name is set/)
  })

  t.test('plugstack arguments are strict', async t => {
    t.teardown(() => cluster.setPlugstack(plugstack))
    const cases: Array<[string, string[]]> = [
      ['foo=bar', ['enroot: unknown configuration option: foo=bar', 'enroot: failed to parse configuration']],
      ['remap_root=1', ['enroot: unknown configuration option: remap_root=1']],
      ['runtime_path', ['enroot: unknown configuration option: runtime_path']],
      ['container_scope=node', ['enroot: container_scope: invalid value: node']],
      ['execute_entrypoint=maybe', ['enroot: execute_entrypoint: invalid value: maybe']],
      ['launcher=relative/enroot', ['enroot: launcher: invalid value: relative/enroot']],
      ['cache=elsewhere', ['enroot: cache: invalid value: elsewhere']]
    ]
    for (const [arg, messages] of cases) {
      cluster.setPlugstack(`required ${so} launcher=${launcher} ${arg}\n`)
      const r = await cluster.srun(['-N1', 'true'])
      t.not(r.status, 0, arg)
      for (const m of messages) t.ok(r.stderr.includes(m), `${arg.slice(0, 40)} → ${m}`)
      t.match(r.stderr, /spank_enroot\.so: init\(\) failed/)
    }
  })

  t.test('plugstack arguments reach the launcher', async t => {
    t.teardown(() => cluster.setPlugstack(plugstack))
    cluster.setPlugstack(`required ${so} launcher=${launcher} container_scope=job execute_entrypoint=1 runtime_path=/var/tmp/enroot-node-local/pyxis ` +
      'cache=shared:/srv/cache use_enroot_load=yes importer=/usr/bin/imp use_squashfuse=true sbatch_support=1\n')
    const rec = recorder()
    await cluster.srun(['-N1', '--container-image=img', 'true'], { env: rec.env })
    const [call] = recorded(rec.dir)
    for (const a of ['--scope=job', '--entrypoint=y', '--runtime-path=/var/tmp/enroot-node-local/pyxis', '--cache=shared:/srv/cache',
      '--use-enroot-load', '--importer=/usr/bin/imp', '--use-squashfuse']) t.ok(call?.argv.includes(a), a)
    t.ok(call?.env.includes('PYXIS_RUNTIME_PATH=/var/tmp/enroot-node-local/pyxis'))
    const u = testUser()
    t.same(readdirSync(join(cluster.nodeLocal('node1'), 'pyxis')), [String(u.uid)], 'the per-user runtime directory was created on the node')
    const r = await cluster.srun(['-N1', '--container-image=img', 'true'], { env: { ...rec.env, PYXIS_CONTAINER_ENTRYPOINT: '0' } })
    t.not(r.status, 0)
  })

  t.test('a launcher that cannot be executed is reported by path', async t => {
    t.teardown(() => cluster.setPlugstack(plugstack))
    cluster.setPlugstack(`required ${so} launcher=/nonexistent/enroot\n`)
    const r = await cluster.srun(['-N1', '--container-image=img', 'true'])
    t.not(r.status, 0)
    t.match(r.stderr, /enroot: couldn't execute the launcher \/nonexistent\/enroot/)
  })

  t.test('sbatch_support=0 removes the options from sbatch, not from srun', async t => {
    t.teardown(() => cluster.setPlugstack(plugstack))
    cluster.setPlugstack(`required ${so} launcher=${launcher} sbatch_support=0\n`)
    const r = await cluster.sbatch(['--container-image=img', '--wrap=true'])
    t.not(r.status, 0)
    t.match(r.stderr, /unrecognized option/)
    const s = await cluster.srun(['-N1', '--container-workdir=/x', 'true'])
    t.match(s.stderr, /ignoring --container-workdir/)
  })
}
