import t from 'tap'
import { mkdirSync, chownSync, writeFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { enroot, enrootEnv, userTmp, IS_ROOT, testUser, requireFeature, REPO } from '../helpers/env.js'
import { errorLine, busyboxImage } from './fixtures.js'

t.test('start validates the rootfs, -e, --mount and --conf before anything runs', async t => {
  const dir = userTmp(t)
  const env = enrootEnv(dir)
  const c = join(dir, 'data', 'c')
  mkdirSync(c)
  if (IS_ROOT) chownSync(c, testUser().uid, testUser().gid)
  const cases: Array<[string[], string]> = [
    [['start', 'nope'], `[ERROR] No such file or directory: ${join(dir, 'data', 'nope')}`],
    [['start', 'a/b'], '[ERROR] Invalid argument: a/b'],
    [['start', '..'], '[ERROR] Invalid argument: ..'],
    [['start', '-e', '1X', 'c'], '[ERROR] Invalid argument: 1X'],
    [['start', '-m', 'a b', 'c'], '[ERROR] Invalid argument: a b'],
    [['start', '-m', '/x::/y', 'c'], '[ERROR] Invalid argument: /x::/y'],
    [['start', '--conf', join(dir, 'none.conf'), 'c'], `[ERROR] No such file or directory: ${join(dir, 'none.conf')}`],
    [['start', '--rc', join(dir, 'none.rc'), 'c'], `[ERROR] No such file or directory: ${join(dir, 'none.rc')}`]
  ]
  for (const [args, msg] of cases) {
    const r = await enroot(args, env)
    t.same([r.status, errorLine(r)], [1, msg], args.join(' '))
  }
  const usage = await enroot(['start'], env)
  t.same([usage.status, usage.stdout.startsWith('Usage: enroot start')], [1, true])
})

t.test('a conf script with a syntax error is shown as warnings, then Invalid argument', async t => {
  const dir = userTmp(t)
  const conf = join(dir, 'bad.conf')
  writeFileSync(conf, 'environ() {\n')
  const r = await enroot(['start', '-c', conf, 'c'], enrootEnv(dir))
  t.equal(r.status, 1)
  t.match(r.stderr, /\[WARN\] /)
  t.equal(errorLine(r), `[ERROR] Invalid argument: ${conf}`)
})

t.test('a container runs with the planned environment, drop-ins, built-in hooks and conf script', async t => {
  if (!requireFeature(t, 'the native runtime', existsSync(join(REPO, 'native', 'build', 'Release', 'enroot_native.node')), 'run npm run build:native')) return
  const dir = userTmp(t)
  const env = enrootEnv(dir, { ENROOT_SYSCONF_PATH: REPO, TERM: 'vt100' })
  t.equal((await enroot(['create', '-n', 'bb', busyboxImage(dir)], env)).status, 0)
  const conf = join(dir, 'c.conf')
  writeFileSync(conf, 'environ() { echo FROM_CONF=1; }\nmounts() { echo "' + dir + ' /mnt/host none x-create=dir,bind,ro"; }\n')
  const r = await enroot(['start', '-c', conf, '-e', 'CLI=2', 'bb', '/bin/busybox', 'sh', '-c',
    'echo "$FROM_IMAGE $FROM_CONF $CLI $TERM"; head -3 /etc/passwd | cut -d: -f1; ls /mnt/host/c.conf; exit 7'], env)
  t.equal(r.status, 7, 'the container\'s status passes through', { stderr: r.stderr })
  const u = IS_ROOT ? testUser().name : String(process.env.USER)
  t.equal(r.stdout, `1 1 2 vt100\nroot\nnobody\n${u}\n/mnt/host/c.conf\n`)
})
