// Hooks run between the two phases, inside the container's user and mount namespaces with full
// capabilities there; they talk back through $ENROOT_ENVIRON and $ENROOT_MOUNTS (spec §5.4).
import t from 'tap'
import { existsSync, readdirSync, readFileSync, writeFileSync, chmodSync } from 'node:fs'
import { join } from 'node:path'
import { userTmp } from '../helpers/env.js'
import { buildRootfs } from '../helpers/rootfs.js'
import { exitOf, makePlan, needRuntime, runPlan, spawnPlan, until, userProcesses } from './harness.js'

function hookScript (dir: string, name: string, body: string): string {
  const p = join(dir, name)
  writeFileSync(p, `#!/bin/sh\n${body}\n`)
  chmodSync(p, 0o755)
  return p
}

t.test('a failing hook aborts the start, naming the hook and its status', async t => {
  if (!needRuntime(t)) return
  const base = userTmp(t)
  const rootfs = buildRootfs(join(base, 'rootfs'))
  const hook = hookScript(base, '50-fail.sh', 'exit 3')
  const r = await runPlan(base, makePlan(base, rootfs, ['sh', '-c', 'echo ran'], { hooks: [{ path: hook, argv: [hook] }] }))
  t.equal(r.status, 1)
  t.equal(r.stdout, '', 'the command never runs')
  t.match(r.stderr, `${hook} exited with return code 3`)
  t.match(r.stderr, 'code=HOOK')
  t.notOk(existsSync(join(base, 'run', 'c')), 'the runtime directory is removed')
})

t.test('the hook environment contract: ENROOT_* variables, environ and mounts outputs', async t => {
  if (!needRuntime(t)) return
  const base = userTmp(t)
  const rootfs = buildRootfs(join(base, 'rootfs'))
  const report = join(base, 'report')
  const hook = hookScript(base, '10-contract.sh', [
    `{ echo "pid=$ENROOT_PID"; kill -0 "$ENROOT_PID" && echo alive; echo "rootfs=$ENROOT_ROOTFS"; echo "environ=$ENROOT_ENVIRON"; echo "mounts=$ENROOT_MOUNTS"`,
    '  echo "host=$HOSTVAR"; grep "^Seccomp:" /proc/self/status; grep "^CapEff:" /proc/self/status; cat "$ENROOT_ENVIRON"; } > ' + report,
    'echo "HOOKVAR=from-hook" >> "$ENROOT_ENVIRON"',
    'echo "BASE=overridden" >> "$ENROOT_ENVIRON"',
    'echo "tmpfs /hooked tmpfs x-create=dir" >> "$ENROOT_MOUNTS"',
    'echo written-by-hook > "$ENROOT_ROOTFS/etc/hooked"'
  ].join('\n'))
  const r = await runPlan(base, makePlan(base, rootfs, ['sh', '-c', 'echo "$HOOKVAR $BASE"; cat /etc/hooked; grep -c " /hooked " /proc/self/mounts'], {
    environ: ['PATH=/bin', 'BASE=1'], hookEnv: { PATH: '/usr/bin:/bin', HOSTVAR: 'h', BASH_ENV: 'x' }, hooks: [{ path: hook, argv: [hook] }]
  }))
  t.equal(r.status, 0, r.stderr)
  t.equal(r.stdout, 'from-hook overridden\nwritten-by-hook\n1\n')
  const rep = readFileSync(report, 'utf8')
  t.match(rep, /^pid=\d+\nalive\n/)
  t.match(rep, `rootfs=${join(base, 'run', 'c', 'mnt', 'root')}\n`)
  t.match(rep, `environ=${join(base, 'run', 'c', 'environment')}\n`)
  t.match(rep, `mounts=${join(base, 'run', 'c', 'fstab')}\n`)
  t.match(rep, 'host=h\n')
  t.match(rep, /Seccomp:\s+2/, 'hooks run under the seccomp filter')
  t.notMatch(rep, /CapEff:\s+0+\n/, 'with capabilities')
  t.match(rep, 'PATH=/bin\nBASE=1\n', 'the environment file before hooks')
  t.notOk(existsSync(join(rootfs, 'etc', 'hooked')), 'hook writes went to the private layer')
})

t.test('SIGKILL of the start during hooks leaves no process, mount or runtime directory', async t => {
  if (!needRuntime(t)) return
  const base = userTmp(t)
  const rootfs = buildRootfs(join(base, 'rootfs'))
  const marker = `hook-marker-${process.pid}`
  const hook = hookScript(base, '20-sleep.sh', `echo started > "${join(base, 'hook-started')}"; exec sleep 30 ${marker}`)
  const { child } = spawnPlan(base, makePlan(base, rootfs, ['true'], { runtimeDir: join(base, 'run', 'killed'), hooks: [{ path: hook, argv: [hook] }] }))
  t.ok(await until(() => existsSync(join(base, 'hook-started'))), 'the hook runs')
  child.kill('SIGKILL')
  await exitOf(child)
  t.ok(await until(() => userProcesses(marker).length === 0, 5000), 'no hook or container process is left')
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
  t.notMatch(mounts, join(base, 'run'), 'no mount on the host')
  const again = await runPlan(base, makePlan(base, rootfs, ['true'], { runtimeDir: join(base, 'run', 'next') }))
  t.equal(again.status, 0, again.stderr)
  t.same(readdirSync(join(base, 'run')), [], 'the next start removes the stale runtime directory')
})
