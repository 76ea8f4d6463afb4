// The front controller's contract, through the real binary as the unprivileged user.
import t from 'tap'
import { enroot, enrootEnv, userTmp } from './helpers/env.js'

t.test('version prints enroot\'s version and exits 0', async t => {
  const r = await enroot(['version'], enrootEnv(userTmp(t)))
  t.equal(r.status, 0)
  t.match(r.stdout, /^\d+\.\d+\.\d+\n$/)
})

t.test('no command prints the global usage on stdout and exits 1; help exits 0', async t => {
  const env = enrootEnv(userTmp(t))
  const none = await enroot([], env)
  t.equal(none.status, 1)
  t.match(none.stdout, /^Usage: enroot COMMAND/)
  const help = await enroot(['help'], env)
  t.equal(help.status, 0)
  t.match(help.stdout, /^Usage: enroot COMMAND/)
})

t.test('an unknown command prints the global usage and exits 1', async t => {
  const r = await enroot(['frobnicate'], enrootEnv(userTmp(t)))
  t.equal(r.status, 1)
  t.match(r.stdout, /^Usage: enroot COMMAND/)
})

t.test('an unknown option prints the command usage on stdout, names the option on stderr and exits 1', async t => {
  const r = await enroot(['info', '--bogus'], enrootEnv(userTmp(t)))
  t.equal(r.status, 1)
  t.match(r.stdout, /^Usage: enroot info/)
  t.match(r.stderr, /\[ERROR\] Unknown option: --bogus/)
})

t.test('info lists the effective configuration of the calling user', async t => {
  const dir = userTmp(t)
  const env = enrootEnv(dir, { ENROOT_SQUASH_OPTIONS: '-comp zstd', ENROOT_REMAP_ROOT: 'no' })
  const r = await enroot(['info'], env)
  t.equal(r.status, 0)
  t.match(r.stdout, /^Enroot version: /)
  t.match(r.stdout, /\nEnvironment variables:\n/)
  t.match(r.stdout, /\n {2}ENROOT_SQUASH_OPTIONS=-comp zstd\n/)
  t.match(r.stdout, new RegExp(`\\n {2}ENROOT_CACHE_PATH=${dir}/cache\\n`))
  t.notMatch(r.stdout, /ENROOT_REMAP_ROOT/, 'falsy values are unset')
  const keys = [...r.stdout.matchAll(/^ {2}(ENROOT_[A-Z_]+)=/gm)].map(m => m[1])
  t.same(keys, [...keys].sort(), 'sorted')
})

t.test('--help prints the command usage and exits 0', async t => {
  const r = await enroot(['version', '--help'], enrootEnv(userTmp(t)))
  t.equal(r.status, 0)
  t.match(r.stdout, /^Usage: enroot version/)
})
