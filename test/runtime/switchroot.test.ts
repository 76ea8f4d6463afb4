// Login emulation and command dispatch exactly as enroot-switchroot (spec §6.2).
import t from 'tap'
import { join } from 'node:path'
import { IS_ROOT, testUser, userTmp } from '../helpers/env.js'
import { buildRootfs } from '../helpers/rootfs.js'
import { makePlan, needRuntime, runPlan } from './harness.js'

t.test('dispatch: a space makes a shell string, otherwise exec "$@", a non-executable file is a script', async t => {
  if (!needRuntime(t)) return
  const base = userTmp(t)
  const rootfs = buildRootfs(join(base, 'rootfs'), { files: { 'script.sh': 'echo "script $0 $1"\n' } })
  const run = async (cmd: string[]): Promise<string> => {
    const r = await runPlan(base, makePlan(base, rootfs, cmd))
    t.equal(r.status, 0, r.stderr)
    return r.stdout
  }
  t.equal(await run(['echo $0 "$1"', 'one']), 'sh one\n', 'shell string with $0 the shell and the rest as $1…')
  t.equal(await run(['echo', 'a  b', '$HOME']), 'a  b $HOME\n', 'arguments are not re-split or expanded')
  t.equal(await run(['/script.sh', 'x']), 'script /script.sh x\n', 'run as a script')
  t.equal(await run(['sh', '-c', 'echo $0', 'zero']), 'zero\n')
})

t.test('the rc script runs with the command as "$@"; /etc/rc is used when there is none', async t => {
  if (!needRuntime(t)) return
  const base = userTmp(t)
  const rootfs = buildRootfs(join(base, 'rootfs'), { files: { 'etc/rc': 'echo etc-rc; exec "$@"\n' } })
  const a = await runPlan(base, makePlan(base, rootfs, ['echo', 'cmd'], { rc: 'echo "plan-rc $#"; exec "$@"\n' }))
  t.equal(a.stdout, 'plan-rc 2\ncmd\n', a.stderr)
  const b = await runPlan(base, makePlan(base, rootfs, ['echo', 'cmd']))
  t.equal(b.stdout, 'etc-rc\ncmd\n', b.stderr)
})

t.test('login emulation sets HOME/SHELL/USER/LOGNAME/PATH/TERM without overwriting, and enters HOME', async t => {
  if (!needRuntime(t)) return
  const base = userTmp(t)
  const rootfs = buildRootfs(join(base, 'rootfs'), { files: { 'etc/login.defs': 'ENV_PATH PATH=/usr/bin:/bin:/login\n' } })
  const name = IS_ROOT ? testUser().name : 'user'
  const r = await runPlan(base, makePlan(base, rootfs, ['sh', '-c', 'echo "$HOME|$SHELL|$USER|$LOGNAME|$PATH|$TERM|$(pwd)|$0"'], {
    login: true, environ: ['TERM=xterm']
  }))
  t.equal(r.status, 0, r.stderr)
  t.equal(r.stdout, `/tmp|/bin/sh|${name}|${name}|/usr/bin:/bin:/login|xterm|/tmp|sh\n`)
  const root = await runPlan(base, makePlan(base, rootfs, ['sh', '-c', 'echo "$HOME|$USER|$LOGNAME|$PATH"'], { login: true, remapRoot: true, environ: [] }))
  t.equal(root.stdout, `/root|root|${name}|/bin:/usr/bin:/sbin:/usr/sbin\n`, root.stderr)
})

t.test('a non-root login with /etc/nologin prints it and exits 0', async t => {
  if (!needRuntime(t)) return
  const base = userTmp(t)
  const rootfs = buildRootfs(join(base, 'rootfs'), { files: { 'etc/nologin': 'go away\n' } })
  const r = await runPlan(base, makePlan(base, rootfs, ['sh', '-c', 'echo ran; exit 3'], { login: true }))
  t.equal(r.status, 0)
  t.equal(r.stdout, 'go away\n')
})

t.test('login emulation: MAIL, LANG/LC_* from /etc/locale.conf, ULIMIT, the USERGROUPS_ENAB umask rule', async t => {
  if (!needRuntime(t)) return
  const base = userTmp(t)
  const u = IS_ROOT ? testUser() : { name: 'user', uid: process.getuid?.() ?? 1000, gid: process.getgid?.() ?? 1000 }
  const rootfs = buildRootfs(join(base, 'rootfs'), {
    files: {
      'etc/login.defs': 'MAIL_CHECK_ENAB yes\nMAIL_DIR /var/mail\nUMASK 027\nUSERGROUPS_ENAB yes\nULIMIT 2048\n',
      'etc/locale.conf': 'LANG="de_DE.UTF-8"\nLC_TIME=C.UTF-8\n# LC_ALL=x\nbogus=1\nLC_bad=2\n'
    }
  })
  const script = 'echo "$MAIL|$LANG|$LC_TIME|${LC_ALL-unset}|${bogus-unset}"; umask; ulimit -f'
  const r = await runPlan(base, makePlan(base, rootfs, ['sh', '-c', script], { login: true, environ: ['LC_TIME=keep'] }))
  t.equal(r.status, 0, r.stderr)
  // The test user's primary group is its own (same name, gid == uid): group bits follow the owner bits.
  const own = u.uid === u.gid
  t.equal(r.stdout, `/var/mail/${u.name}|de_DE.UTF-8|keep|unset|unset\n${own ? '0007' : '0027'}\n2048\n`)
  const mailFile = buildRootfs(join(base, 'rootfs2'), { files: { 'etc/login.defs': 'MAIL_CHECK_ENAB yes\nMAIL_FILE .mail\n' } })
  const m = await runPlan(base, makePlan(base, mailFile, ['sh', '-c', 'echo "$MAIL"; umask'], { login: true }))
  t.equal(m.stdout, '/tmp/.mail\n0022\n', 'MAIL_FILE is in HOME; the umask is left alone without UMASK')
  const off = buildRootfs(join(base, 'rootfs3'), { files: { 'etc/login.defs': 'UMASK 027\n', 'etc/locale.conf': 'LANG=C\n' } })
  const o = await runPlan(base, makePlan(base, off, ['sh', '-c', 'echo "${MAIL-unset}|$LANG"; umask'], { login: true }))
  t.equal(o.stdout, 'unset|C\n0027\n', 'no MAIL without MAIL_CHECK_ENAB, no group rule without USERGROUPS_ENAB')
})

t.test('login emulation: the interactive shell prints MOTD_FILE unless HUSHLOGIN_FILE hushes it', async t => {
  if (!needRuntime(t)) return
  const base = userTmp(t)
  const name = IS_ROOT ? testUser().name : 'user'
  const motd = { 'etc/motd': 'default motd\n', 'etc/motd2': 'second\n', 'etc/motd3': 'third\n' }
  const plain = buildRootfs(join(base, 'a'), { files: { ...motd, 'etc/login.defs': 'MOTD_FILE /etc/motd2:/etc/motd3\n' } })
  t.equal((await runPlan(base, makePlan(base, plain, [], { login: true }))).stdout, 'second\nthird\n')
  const byHome = buildRootfs(join(base, 'b'), { files: { ...motd, 'etc/login.defs': 'HUSHLOGIN_FILE .hushlogin\n', 'tmp/.hushlogin': '' } })
  t.equal((await runPlan(base, makePlan(base, byHome, [], { login: true }))).stdout, '', 'a .hushlogin in HOME hushes')
  const byList = buildRootfs(join(base, 'c'), { files: { ...motd, 'etc/login.defs': 'HUSHLOGIN_FILE /etc/hushlogins\n', 'etc/hushlogins': `other\n${name}\n` } })
  t.equal((await runPlan(base, makePlan(base, byList, [], { login: true }))).stdout, '', 'a listed user is hushed')
  const notListed = buildRootfs(join(base, 'd'), { files: { ...motd, 'etc/login.defs': 'HUSHLOGIN_FILE /etc/hushlogins\n', 'etc/hushlogins': 'other\n' } })
  t.equal((await runPlan(base, makePlan(base, notListed, [], { login: true }))).stdout, 'default motd\n')
})
