import t from 'tap'
import { spawn } from 'node:child_process'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { enroot, enrootEnv, userTmp, IS_ROOT, testUser, requireFeature, runAsUser, REPO, ENROOT } from '../helpers/env.js'
import { busyboxImage } from './fixtures.js'
import { cmdline, pidsWith, until } from '../helpers/procs.js'

/** The container's own processes (busybox exec'd) whose command line contains marker. */
const containerPids = (marker: string): number[] => pidsWith(marker).filter(p => cmdline(p).startsWith('/bin/busybox'))

const softNofile = (pid: number): string => /^Max open files\s+(\S+)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'))?.[1] ?? ''

t.test('exec gives the command the caller\'s RLIMIT_NOFILE soft limit back, as start does, not the one Node raised', async t => {
  if (!requireFeature(t, 'the native runtime', existsSync(join(REPO, 'native', 'build', 'Release', 'enroot_native.node')), 'run npm run build:native')) return
  const dir = userTmp(t)
  const env = enrootEnv(dir, { ENROOT_SYSCONF_PATH: REPO })
  t.equal((await enroot(['create', '-n', 'bb', busyboxImage(dir)], env)).status, 0)
  const marker = `sleep ${String(8000000 + Math.floor(Math.random() * 100000))}`
  const u = IS_ROOT ? testUser() : undefined
  // sh stays the parent of node (the `; true` prevents exec), as a login shell would be; env(1) drops
  // the NODE_OPTIONS that tap puts back into a child's environment.
  const start = spawn('/usr/bin/env', ['-u', 'NODE_OPTIONS', '/bin/sh', '-c',
    `ulimit -Sn 512; "${process.execPath}" "${ENROOT}" start bb /bin/busybox ${marker}; true`], {
    env, stdio: 'ignore', ...(u !== undefined ? { uid: u.uid, gid: u.gid } : {})
  })
  const ended = new Promise(resolve => start.on('close', resolve))
  t.teardown(async () => { for (const p of containerPids(marker)) try { process.kill(p, 'SIGKILL') } catch {} await ended })
  t.ok(await until(() => containerPids(marker).length > 0), 'the container runs')
  const pid = containerPids(marker)[0] as number
  t.equal(softNofile(pid), '512', 'start restored it for the container')
  t.not(softNofile(process.pid), '512', 'Node\'s own soft limit differs, so the check means something')
  const r = await runAsUser('/bin/sh', ['-c', `ulimit -Sn 512; "${process.execPath}" "${ENROOT}" exec ${pid} /bin/busybox sh -c 'ulimit -Sn'; true`], { env })
  t.equal(r.stdout, '512\n', r.stderr)
})
