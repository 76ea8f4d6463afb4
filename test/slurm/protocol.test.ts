// The launcher's half of the shim protocol, as pure functions: argument parsing, pyxis's container
// names, image resolution, the start configuration script and the status lines.
import t from 'tap'
import { parseArgs } from '../../launcher/src/util/args.js'
import {
  STEP_OPTIONS, containerName, errorLine, imageSource, isJobContainer, parseFancyList, parseStepRequest, readyLine, savePath, startData, NO_ENTRYPOINT_RC
} from '../../launcher/src/slurm/protocol.js'

const parse = (argv: string[]): ReturnType<typeof parseStepRequest> => parseStepRequest(parseArgs(argv, STEP_OPTIONS, ''))

t.test('parses what spank_enroot.so passes', async t => {
  const r = parse(['--job-id=12', '--step-id=3', '--local-tasks=2', '--total-tasks=6', '--status-fd=3', '--runtime-path=/run/x', '--scope=job',
    '--cache=shared:/c', '--cwd=/home/u', '--image=ubuntu', '--name=box:exec', '--mount=/a /b x-create=auto,rbind', '--mount=tmpfs /t x-create=dir',
    '--workdir=/w', '--save=out.sqsh', '--entrypoint=y', '--entrypoint-log', '--env=A', '--env=B', '--use-squashfuse'])
  t.same(r, {
    job: 12, step: 3, localTasks: 2, totalTasks: 6, statusFd: 3, runtimePath: '/run/x', scope: 'job', cache: 'shared:/c', cwd: '/home/u',
    image: 'ubuntu', name: { name: 'box', flag: 'exec' }, mounts: ['/a /b x-create=auto,rbind', 'tmpfs /t x-create=dir'], workdir: '/w',
    save: 'out.sqsh', entrypoint: true, entrypointLog: true, env: ['A', 'B'], useEnrootLoad: false, useSquashfuse: true, allStarted: false, serviceIdle: 60
  })
  t.same(parse(['--job-id=1', '--step-id=0', '--name=n']).name, { name: 'n', flag: 'auto' })
  t.equal(parse(['--job-id=1', '--step-id=0', '--pid=77', '--all-started=y']).pid, 77)
  t.throws(() => parse(['--step-id=0']), /missing --job/)
  t.throws(() => parse(['--job-id=x', '--step-id=0']), /invalid number/)
  t.throws(() => parse(['--job-id=1', '--step-id=0', '--scope=node']), /invalid scope/)
  t.throws(() => parse(['--job-id=1', '--step-id=0', '--name=a:zzz']), /invalid name flag/)
})

t.test('container names follow pyxis §4 for both scopes, batch steps included', async t => {
  t.equal(containerName({ job: 5, step: 0, scope: 'global' }), 'pyxis_5.0')
  t.equal(containerName({ job: 5, step: 0, scope: 'global', name: { name: 'box', flag: 'auto' } }), 'pyxis_box')
  t.equal(containerName({ job: 5, step: 2, scope: 'job' }), 'pyxis_5_5.2')
  t.equal(containerName({ job: 5, step: 2, scope: 'job', name: { name: 'box', flag: 'auto' } }), 'pyxis_5_box')
  t.equal(containerName({ job: 123, step: 4294967291, scope: 'global' }), 'pyxis_123.4294967291')
  t.ok(isJobContainer('pyxis_5_box', 5))
  t.notOk(isJobContainer('pyxis_55_box', 5))
  t.notOk(isJobContainer('pyxis_5_', 5))
  t.notOk(isJobContainer('pyxis_5.0', 5))
})

t.test('images: . or / is a squashfs on the node, anything else a registry reference', async t => {
  t.same(imageSource('ubuntu:24.04', undefined), { kind: 'registry', uri: 'docker://ubuntu:24.04' })
  t.same(imageSource('docker://x', undefined), { kind: 'registry', uri: 'docker://x' })
  t.same(imageSource('dockerd://x', undefined), { kind: 'registry', uri: 'dockerd://x' })
  t.same(imageSource('user@nvcr.io#nvidia/pytorch:24.01', undefined), { kind: 'registry', uri: 'docker://user@nvcr.io#nvidia/pytorch:24.01' })
  t.same(imageSource('/img/a.sqsh', undefined), { kind: 'squashfs', path: '/img/a.sqsh' })
  t.same(imageSource('./a.sqsh', '/home/u'), { kind: 'squashfs', path: '/home/u/a.sqsh' })
  t.throws(() => imageSource('./a.sqsh', undefined), /cwd is unset/)
  t.equal(savePath('/o.sqsh', undefined), '/o.sqsh')
  t.equal(savePath('o.sqsh', '/home/u'), '/home/u/o.sqsh')
  t.throws(() => savePath('o.sqsh', undefined), /container export: relative path used, but job's cwd is unset/)
})

t.test('pyxis\'s configuration script as data: the mounts, an rc.local bind without the entrypoint, and the env the job sets', async t => {
  const data = startData({ mounts: ['/a\\040b /c x-create=auto,rbind', "/it's /q x-create=auto,rbind"], entrypoint: false, env: ['A', 'EMPTY', 'UNSET', 'EVIL'] },
    { A: '1', EMPTY: '', EVIL: '$(touch /tmp/pwned) `x` "q"' }, '/run/pyxis/1000/7.0 x.rc.local')
  t.same(data.mounts, ['/a\\040b /c x-create=auto,rbind', "/it's /q x-create=auto,rbind",
    '/run/pyxis/1000/7.0\\040x.rc.local /etc/rc.local none x-create=file,bind,ro,nosuid,nodev,private'], 'the rc.local source is fstab-escaped')
  t.same(data.environ, ['A=1', 'EVIL=$(touch /tmp/pwned) `x` "q"'], 'only names the job sets, values verbatim')
  t.equal(NO_ENTRYPOINT_RC, 'exec "$@"\n', 'no entrypoint: rc execs the command')
  t.same(startData({ mounts: [], entrypoint: true, env: [] }, {}, '/x').mounts, [], 'with the entrypoint, rc is left alone')
})

t.test('status lines and enroot list -f parsing', async t => {
  t.equal(readyLine(42, false), 'READY 42\n')
  t.equal(readyLine(42, true), 'READY 42 keep\n')
  t.equal(errorLine('failed to import docker image: x\n        hint'), 'ERROR failed to import docker image: x hint\n')
  const list = parseFancyList('NAME       PID   COMM  STATE\npyxis_a\npyxis_b    123   sh    S\n           130   sleep S\npyxis_c    140   sh    T\n')
  t.same([...list.entries()], [['pyxis_a', undefined], ['pyxis_b', 123], ['pyxis_c', 140]])
})
