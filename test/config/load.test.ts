import t from 'tap'
import { mkdtempSync, writeFileSync, mkdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { loadConfig, parseConfigText, isFalsy, loadDirectives, needsSyntaxCheck } from '../../launcher/src/config/load.js'

// Every directory this file makes, removed when it ends.
const made: string[] = []
t.teardown(() => { for (const d of made) rmSync(d, { recursive: true, force: true }) })
const tmp = (prefix: string): string => { const d = mkdtempSync(join(tmpdir(), prefix)); made.push(d); return d }

function sysconf (files: Record<string, string>): string {
  const dir = tmp('enroot-conf-')
  mkdirSync(join(dir, 'enroot.conf.d'))
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text)
  return dir
}

const baseEnv = { HOME: '/home/u', PATH: '/usr/bin:/bin' }

t.test('splits lines on the first run of space, tab or = and keeps only enroot keys', async t => {
  const lines = parseConfigText('ENROOT_A 1\nENROOT_B=2\nENROOT_C\t =3\n#ENROOT_D 4\nFOO 5\nNVIDIA_X y\nhttp_proxy p\nHTTP_PROXY q\nENROOT_E1 digits\n', 'f')
  t.same(lines.map(l => [l.key, l.value]), [['ENROOT_A', '1'], ['ENROOT_B', '2'], ['ENROOT_C', '3'], ['NVIDIA_X', 'y'], ['http_proxy', 'p']])
})

t.test('falsy spellings are enroot\'s, and 0 is not falsy', async t => {
  for (const v of ['n', 'no', 'N', 'NO', 'No', 'f', 'false', 'F', 'False', 'FALSE']) t.ok(isFalsy(v), v)
  for (const v of ['0', 'nO', 'off', 'y', '']) t.notOk(isFalsy(v), JSON.stringify(v))
})

t.test('defaults follow the XDG paths of HOME', async t => {
  const cfg = loadConfig({ env: baseEnv, sysconfdir: sysconf({}), uid: 1000 })
  t.equal(cfg.get('ENROOT_CACHE_PATH'), '/home/u/.cache/enroot')
  t.equal(cfg.get('ENROOT_DATA_PATH'), '/home/u/.local/share/enroot')
  t.equal(cfg.get('ENROOT_CONFIG_PATH'), '/home/u/.config/enroot')
  t.equal(cfg.get('ENROOT_TEMP_PATH'), '/tmp')
  t.equal(cfg.get('ENROOT_SQUASH_OPTIONS'), '-comp zstd -Xcompression-level 1')
  t.equal(cfg.get('ENROOT_MAX_CONNECTIONS'), '10')
  t.equal(cfg.get('ENROOT_MOUNT_HOME'), undefined)
  t.notOk(cfg.flag('ENROOT_REMAP_ROOT'), 'false default is unset')
  t.ok(cfg.flag('ENROOT_LOGIN_SHELL'))
})

t.test('precedence: non-empty environment > enroot.conf.d > enroot.conf > default', async t => {
  const dir = sysconf({ 'enroot.conf': 'ENROOT_ZSTD_OPTIONS -3\nENROOT_MAX_CONNECTIONS 4\nENROOT_TEMP_PATH /a\n' })
  writeFileSync(join(dir, 'enroot.conf.d', '50-site.conf'), 'ENROOT_MAX_CONNECTIONS=6\n')
  const cfg = loadConfig({ env: { ...baseEnv, ENROOT_TEMP_PATH: '/env', ENROOT_ZSTD_OPTIONS: '' }, sysconfdir: dir, uid: 1000 })
  t.equal(cfg.get('ENROOT_TEMP_PATH'), '/env', 'environment wins')
  t.equal(cfg.get('ENROOT_ZSTD_OPTIONS'), '-3', 'an empty environment value is overwritten by the file')
  t.equal(cfg.get('ENROOT_MAX_CONNECTIONS'), '6', 'conf.d is read after enroot.conf')
})

t.test('values are shell-evaluated like `eval echo`', async t => {
  const dir = sysconf({ 'enroot.conf': 'ENROOT_DATA_PATH ${HOME}/containers\nENROOT_CACHE_PATH $(echo /x)/y\nENROOT_TEMP_PATH   "/a   b"\nENROOT_ZSTD_OPTIONS  -1    -T0\n' })
  const cfg = loadConfig({ env: baseEnv, sysconfdir: dir, uid: 1000 })
  t.equal(cfg.get('ENROOT_DATA_PATH'), '/home/u/containers')
  t.equal(cfg.get('ENROOT_CACHE_PATH'), '/x/y')
  t.equal(cfg.get('ENROOT_TEMP_PATH'), '/a b', 'eval re-parses, so quoted runs collapse too')
  t.equal(cfg.get('ENROOT_ZSTD_OPTIONS'), '-1 -T0', 'whitespace collapses as echo does')
})

t.test('a configuration file with a syntax error is rejected by name', async t => {
  const dir = sysconf({ 'enroot.conf': 'ENROOT_A "unterminated\n' })
  t.throws(() => loadConfig({ env: baseEnv, sysconfdir: dir, uid: 1000 }), { code: 'CONFIG', message: `Invalid configuration file: ${join(dir, 'enroot.conf')}` })
})

t.test('falsy values unset the key, including from the environment', async t => {
  const cfg = loadConfig({ env: { ...baseEnv, ENROOT_REMAP_ROOT: 'no', ENROOT_MOUNT_HOME: '0' }, sysconfdir: sysconf({}), uid: 1000 })
  t.equal(cfg.get('ENROOT_REMAP_ROOT'), undefined)
  t.ok(cfg.flag('ENROOT_MOUNT_HOME'), '0 enables, as in enroot')
})

t.test('directives override the environment and CLI flags override directives', async t => {
  const dir = tmp('enroot-d-')
  const conf = join(dir, 'x.conf')
  writeFileSync(conf, '#ENROOT_REMAP_ROOT=y\n#ENROOT_ROOTFS_WRITABLE n\nENROOT_MOUNT_HOME=y\n')
  const cfg = loadConfig({ env: { ...baseEnv, ENROOT_ROOTFS_WRITABLE: 'y' }, sysconfdir: sysconf({}), uid: 1000 })
  const d = loadDirectives(cfg, conf)
  t.ok(d.flag('ENROOT_REMAP_ROOT'))
  t.notOk(d.flag('ENROOT_ROOTFS_WRITABLE'), 'directive beats environment')
  t.notOk(d.flag('ENROOT_MOUNT_HOME'), 'only #ENROOT_ lines are directives')
  t.ok(d.with({ ENROOT_ROOTFS_WRITABLE: 'y' }).flag('ENROOT_ROOTFS_WRITABLE'), 'flag beats directive')
})

t.test('the runtime path never defaults to an unwritable /run/enroot for users', async t => {
  const cfg = loadConfig({ env: baseEnv, sysconfdir: sysconf({}), uid: 54321 })
  t.equal(cfg.get('ENROOT_RUNTIME_PATH'), '/tmp/enroot-runtime-54321')
  const withXdg = loadConfig({ env: { ...baseEnv, XDG_RUNTIME_DIR: '/run/user/7' }, sysconfdir: sysconf({}), uid: 7 })
  t.equal(withXdg.get('ENROOT_RUNTIME_PATH'), '/run/user/7/enroot')
})

t.test('only files with shell syntax are handed to bash -n (plain KEY VALUE files parse without a shell)', async t => {
  t.equal(needsSyntaxCheck('# comment\n\nENROOT_DATA_PATH /a/b\nENROOT_SQUASH_OPTIONS -comp lzo -noI\n  ENROOT_X=1,2:3\n'), false)
  for (const text of ['ENROOT_A "quoted"\n', 'ENROOT_A $HOME\n', 'ENROOT_A x # c\n', 'fi\n', 'then x\n', 'ENROOT_A `id`\n', 'ENROOT_A a;b\n']) {
    t.equal(needsSyntaxCheck(text), true, JSON.stringify(text))
  }
})
