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
