import t from 'tap'
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { checkConfScript, runConfScript, confHook } from '../../launcher/src/pipeline/conf-script.js'
import { loadConfig, loadDirectives } from '../../launcher/src/config/load.js'

const dir = mkdtempSync(join(tmpdir(), 'enroot-conf-script-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
const write = (name: string, text: string): string => { const p = join(dir, name); writeFileSync(p, text); return p }

const SCRIPT = `#ENROOT_REMAP_ROOT=y
#ENROOT_MOUNT_HOME=$(echo yes)
first="$1"; count=$#
environ() {
  echo "FIRST=$first"
  echo "COUNT=$count"
  echo "ROOTFS=\${ENROOT_ROOTFS}"
}
mounts() {
  echo "/data /data none bind"
}
rc() {
  echo "hello from rc"
  exec "$@"
}
hooks() {
  echo hooked
}
`

t.test('a missing script is No such file or directory', async t => {
  t.throws(() => checkConfScript(join(dir, 'nope.sh')), { code: 'NOT_FOUND', message: `No such file or directory: ${join(dir, 'nope.sh')}` })
})

t.test('a syntax error is Invalid argument naming the script', async t => {
  const p = write('bad.sh', 'environ() {\n  echo "unterminated\n')
  t.throws(() => checkConfScript(p), { code: 'INVALID', message: `Invalid argument: ${p}` })
})

t.test('directives beat the environment and are shell-evaluated', async t => {
  const p = write('conf.sh', SCRIPT)
  const cfg = loadConfig({ env: { HOME: '/h', PATH: process.env.PATH ?? '/usr/bin:/bin', ENROOT_REMAP_ROOT: 'n', ENROOT_MOUNT_HOME: 'no' }, sysconfdir: dir, uid: 1000 })
  t.notOk(cfg.flag('ENROOT_REMAP_ROOT'))
  const withConf = loadDirectives(cfg, checkConfScript(p))
  t.equal(withConf.get('ENROOT_REMAP_ROOT'), 'y')
  t.equal(withConf.get('ENROOT_MOUNT_HOME'), 'yes')
})

t.test('environ(), mounts() and rc() become data; the command is "$@"', async t => {
  const p = write('conf2.sh', SCRIPT)
  const out = runConfScript(p, ['echo', 'a b'], { PATH: process.env.PATH ?? '/usr/bin:/bin', ENROOT_ROOTFS: '/r' })
  t.same(out, {
    environ: 'FIRST=echo\nCOUNT=2\nROOTFS=/r\n',
    mounts: '/data /data none bind\n',
    rc: '    echo "hello from rc";\n    exec "$@"\n',
    hooks: true
  })
})

t.test('a script without functions gives empty output; a failing function stops the start', async t => {
  t.same(runConfScript(write('empty.sh', '#ENROOT_ROOTFS=x\n'), [], { PATH: '/usr/bin:/bin' }), { environ: '', mounts: '', hooks: false })
  const p = write('fail.sh', 'environ() { false; echo never; }\n')
  t.throws(() => runConfScript(p, [], { PATH: '/usr/bin:/bin' }), { code: 'CONFIG', message: `${p} exited with return code 1` })
  const u = write('unset.sh', 'environ() { echo "X=$UNDEFINED_VAR"; }\n')
  t.throws(() => runConfScript(u, [], { PATH: '/usr/bin:/bin' }), { code: 'CONFIG' }, 'set -u applies')
})

t.test('hooks() is a hook that sources the script with the command as "$@"', async t => {
  t.same(confHook('/c.sh', ['ls', '-l']), { path: '/c.sh', argv: ['bash', '--norc', '--noprofile', '-c', 'set -euo pipefail; source "$0"; hooks', '/c.sh', 'ls', '-l'] })
})

t.test('the script runs in a session of its own, under a bash whose parent is us (it dies with us)', async t => {
  const p = write('session.sh', 'environ() { read -r _ _ _ _ _ sid _ < /proc/$$/stat; echo "PARENT=$PPID"; echo "LEADER=$([ "$sid" = $$ ] && echo y)"; }\n')
  t.equal(runConfScript(checkConfScript(p), [], { PATH: process.env.PATH ?? '/usr/bin:/bin' }).environ, `PARENT=${process.pid}\nLEADER=y\n`)
})
