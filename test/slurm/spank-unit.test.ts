// spank/args.c and spank/config.c without Slurm: a small driver (spank/tests/args-driver.c) calls the
// registered option callbacks, applies PYXIS_CONTAINER_* and the activation rule, and prints the state.
// Milliseconds per case, so the parsing rules are tested one by one; the ASan/UBSan/LSan build of the
// same driver runs every case too. The cluster tests prove the same messages through real srun.
import t, { type Test } from 'tap'
import { spawnSync, execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { requireFeature, REPO } from '../helpers/env.js'

const SPANK = join(REPO, 'spank')
const canBuild = existsSync('/usr/include/slurm/spank.h')

interface Out { status: number | null, state: Record<string, string[]>, errors: string[] }

if (requireFeature(t, 'a C compiler and <slurm/spank.h>', canBuild)) {
  execFileSync('make', ['-s', '-C', SPANK, 'drivers'], { stdio: ['ignore', 'ignore', 'inherit'] })
  const drivers = [join(SPANK, 'build', 'args-driver'), join(SPANK, 'build', 'args-driver-asan')]

  const run = (driver: string, args: string[]): Out => {
    const r = spawnSync(driver, args, { encoding: 'utf8', env: { ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=1', UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1' } })
    const state: Record<string, string[]> = {}
    for (const line of r.stdout.split('\n').filter(l => l !== '')) {
      const eq = line.indexOf('=')
      const k = line.slice(0, eq)
      state[k] = [...(state[k] ?? []), line.slice(eq + 1)]
    }
    if (/Sanitizer|runtime error/.test(r.stderr)) throw new Error(`sanitizer report for ${args.join(' ')}:\n${r.stderr}`)
    return { status: r.status, state, errors: r.stderr.split('\n').filter(l => l.startsWith('error: ')).map(l => l.slice('error: '.length)) }
  }
  /** Both drivers agree; returns the plain one's result. */
  const both = (t: Test, args: string[]): Out => {
    const [a, b] = drivers.map(d => run(d, args)) as [Out, Out]
    t.same(b, a, `sanitized build agrees: ${args.join(' ')}`)
    return a
  }
  const one = (state: Record<string, string[]>, k: string): string | undefined => state[k]?.[0]

  t.test('every option accepts its own value twice, as Slurm may call twice', async t => {
    const args = ['--twice', '--container-image=img', '--container-mounts=/a:/b:ro', '--container-workdir=/w', '--container-name=n:create',
      '--container-save=/s.sqsh', '--container-mount-home', '--no-container-remap-root', '--container-entrypoint', '--container-entrypoint-log',
      '--container-readonly', '--container-env=A,B', '--container-unshare=net,ipc']
    const r = both(t, args)
    t.equal(r.status, 0, r.errors.join('\n'))
    t.same(r.state.mount, ['/a /b x-create=auto,rbind,ro'])
    t.same(r.state.env, ['A', 'B'])
    t.equal(one(r.state, 'name'), 'n')
    t.equal(one(r.state, 'name_flag'), 'create')
    t.same([one(r.state, 'mount_home'), one(r.state, 'remap_root'), one(r.state, 'entrypoint'), one(r.state, 'entrypoint_log'), one(r.state, 'writable')], ['1', '0', '1', '1', '0'])
    t.equal(one(r.state, 'unshare'), 'net,ipc,')
  })

  t.test('mount entries: kinds, flags, DST defaulting to SRC, duplicates, separators', async t => {
    const r = both(t, ['--container-image=i', '--container-mounts=/data,./rel:/r,tmpfs:/t:size=1M+mode=700,umount:/root,/x:/y:a:b,/data'])
    t.same(r.state.mount, ['/data /data x-create=auto,rbind', './rel /r x-create=auto,rbind', 'tmpfs /t x-create=dir,size=1M,mode=700',
      'umount /root x-detach', '/x /y x-create=auto,rbind,a:b'])
    const more = both(t, ['--container-image=i', '--container-mounts=/a:/b', '--container-mounts=/c:/d,/a:/b'])
    t.same(more.state.mount, ['/a /b x-create=auto,rbind', '/c /d x-create=auto,rbind'], 'repeated options accumulate')
    const spaces = both(t, ['--container-image=i', '--container-mounts=/my dir:/in there'])
    t.same(spaces.state.mount, ['/my dir /in there x-create=auto,rbind'], 'spaces are kept (escaped later for fstab)')
  })

  t.test('a rejected value stores nothing, even the valid entries before it', async t => {
    const r = both(t, ['--container-image=i', '--env=PYXIS_CONTAINER_MOUNTS=/a:/b,proc:/proc', '--env=PYXIS_CONTAINER_ENV=A,,B',
      '--env=PYXIS_CONTAINER_UNSHARE=net,pid'])
    t.equal(r.status, 0, 'bad PYXIS_* values are printed and ignored')
    t.same(r.state.mount, undefined)
    t.same(r.state.env, undefined)
    t.equal(one(r.state, 'unshare'), '')
    t.same(r.errors, ['enroot: mount source must be a relative path, an absolute path, "tmpfs" or "umount"', 'enroot: could not add mount entry: proc:/proc',
      'enroot: --container-env: invalid format: A,,B', "enroot: --container-unshare: unknown namespace 'pid'"])
  })

  t.test('PYXIS_CONTAINER_* booleans: pyxis spellings, anything else ignored, WRITABLE before READONLY', async t => {
    for (const [v, want] of [['1', '1'], ['true', '1'], ['YES', '1'], ['y', '1'], ['0', '0'], ['False', '0'], ['no', '0'], ['N', '0'], ['maybe', '-1'], ['', '-1'], ['2', '-1']]) {
      const r = both(t, ['--container-image=i', `--env=PYXIS_CONTAINER_REMAP_ROOT=${v as string}`])
      t.equal(one(r.state, 'remap_root'), want, `REMAP_ROOT=${v as string}`)
    }
    t.equal(one(both(t, ['--container-image=i', '--env=PYXIS_CONTAINER_READONLY=1']).state, 'writable'), '0')
    t.equal(one(both(t, ['--container-image=i', '--env=PYXIS_CONTAINER_READONLY=0']).state, 'writable'), '1')
    t.equal(one(both(t, ['--container-image=i', '--env=PYXIS_CONTAINER_WRITABLE=0', '--env=PYXIS_CONTAINER_READONLY=0']).state, 'writable'), '0')
    t.equal(one(both(t, ['--container-image=i', '--container-writable', '--env=PYXIS_CONTAINER_READONLY=1']).state, 'writable'), '1', 'the command line wins')
    t.equal(one(both(t, ['--container-image=i', '--container-entrypoint-log', '--env=PYXIS_CONTAINER_ENTRYPOINT_LOG=0']).state, 'entrypoint_log'), '1')
    t.equal(one(both(t, ['--container-image=i', '--env=PYXIS_CONTAINER_ENTRYPOINT_LOG=0']).state, 'entrypoint_log'), '0')
  })

  t.test('PYXIS_CONTAINER_UNSHARE applies only when no namespace was given on the command line', async t => {
    t.equal(one(both(t, ['--container-image=i', '--container-unshare=uts', '--env=PYXIS_CONTAINER_UNSHARE=net']).state, 'unshare'), 'uts,')
    t.equal(one(both(t, ['--container-image=i', '--env=PYXIS_CONTAINER_UNSHARE=net,uts']).state, 'unshare'), 'net,uts,')
  })

  t.test('activation: image or name, from the command line or the environment', async t => {
    t.equal(one(both(t, ['--env=PYXIS_CONTAINER_NAME=n']).state, 'enabled'), '1')
    t.equal(one(both(t, ['--env=PYXIS_CONTAINER_IMAGE=i']).state, 'enabled'), '1')
    const off = both(t, ['--container-env=A', '--container-unshare=net', '--container-save=/s'])
    t.equal(one(off.state, 'enabled'), '0')
    t.same(off.errors, ['enroot: ignoring --container-save because neither --container-image nor --container-name is set'],
      '--container-env and --container-unshare are not warned about')
    t.same(both(t, ['--container-writable']).errors, ['enroot: ignoring --container-writable because neither --container-image nor --container-name is set'])
  })

  t.test('rejections are fatal on the command line', async t => {
    for (const [args, msg] of [
      [['--container-name=n', '--container-name=n:auto'], null],
      [['--container-name=n', '--container-name=n:exec'], 'enroot: --container-name specified multiple times'],
      [['--container-remap-root', '--no-container-remap-root'], 'enroot: both --container-remap-root and --no-container-remap-root were specified'],
      [['--container-readonly', '--container-writable'], 'enroot: both --container-writable and --container-readonly were specified'],
      [['--container-save=rel/'], 'enroot: --container-save: target is a directory'],
      [['--container-unshare=,net'], 'enroot: --container-unshare: empty namespace argument'],
      [['--container-mounts=/a:/b,'], 'enroot: --container-mounts: invalid format: ']
    ] as Array<[string[], string | null]>) {
      const r = both(t, args)
      if (msg === null) { t.equal(r.status, 0, `${args.join(' ')}: "n" means "n:auto"`); continue }
      t.equal(r.status, 1, args.join(' '))
      t.same(r.errors, [msg])
    }
  })

  t.test('plugstack arguments', async t => {
    const cfg = (args: string[]): Out => both(t, args.map(a => `--config=${a}`))
    t.same(cfg([]).state.config, ['/run/pyxis|0|global|1|0||1|/usr/local/bin/enroot|per-user||0|60'], 'defaults')
    t.same(cfg(['runtime_path=/x', 'execute_entrypoint=yes', 'container_scope=job', 'sbatch_support=0', 'use_enroot_load=1', 'importer=/imp',
      'use_squashfuse=true', 'launcher=/opt/enroot', 'cache=shared:/c', 'cache_user=enroot-cache', 'allow_http=y', 'launcher_service=0']).state.config,
    ['/x|1|job|0|1|/imp|1|/opt/enroot|shared:/c|enroot-cache|1|0'])
    t.same(cfg(['launcher_service=86400']).state.config, ['/run/pyxis|0|global|1|0||1|/usr/local/bin/enroot|per-user||0|86400'])
    for (const [arg, msg] of [
      ['nope=1', 'enroot: unknown configuration option: nope=1'],
      ['runtime_path', 'enroot: unknown configuration option: runtime_path'],
      ['epilog=1', 'enroot: unknown configuration option: epilog=1'],
      ['sbatch_support=2', 'enroot: sbatch_support: invalid value: 2'],
      ['use_squashfuse=', 'enroot: use_squashfuse: invalid value: '],
      ['container_scope=Job', 'enroot: container_scope: invalid value: Job'],
      ['launcher=enroot', 'enroot: launcher: invalid value: enroot'],
      ['cache=shared:rel', 'enroot: cache: invalid value: shared:rel'],
      ['cache_user=root', 'enroot: cache_user: invalid value: root'],
      ['cache_user=a:b', 'enroot: cache_user: invalid value: a:b'],
      ['allow_http=maybe', 'enroot: allow_http: invalid value: maybe'],
      ['launcher_service=86401', 'enroot: launcher_service: invalid value: 86401'],
      ['launcher_service=-1', 'enroot: launcher_service: invalid value: -1'],
      ['launcher_service=1m', 'enroot: launcher_service: invalid value: 1m'],
      ['launcher_service=', 'enroot: launcher_service: invalid value: '],
      [`importer=/${'x'.repeat(4100)}`, `enroot: importer: path too long: /${'x'.repeat(4100)}`]
    ]) {
      const r = cfg([arg as string])
      t.equal(r.status, 1, (arg as string).slice(0, 40))
      t.same(r.errors, [msg, 'enroot: failed to parse configuration'])
    }
  })
}
