// The config layer's files (spec §4), and proof that no image value can inject shell code into
// /etc/rc or a second variable into /etc/environment.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { imageFiles, rcText, environmentText, fstabText, RC_LOCAL } from '../../launcher/src/image/image-files.js'
import { shellQuote } from '../../launcher/src/image/shell-quote.js'
import type { ImageConfig } from '../../launcher/src/image/types.js'

const URI = 'docker://registry-1.docker.io#library/ubuntu:latest'

t.test('writes /etc/rc the way enroot lays it out', async t => {
  const config: ImageConfig = { config: { Labels: { 'org.opencontainers.image.version': '24.04' }, Cmd: ['/bin/bash'], Entrypoint: null, WorkingDir: '' } }
  t.equal(rcText(config, URI), [
    `# enroot-provenance: ${URI}`,
    '# org.opencontainers.image.version 24.04',
    '',
    "mkdir -p '/' 2> /dev/null",
    "cd '/' && unset OLDPWD || exit 1",
    '',
    'if [ -s /etc/rc.local ]; then',
    '    . /etc/rc.local',
    'fi',
    '',
    'if [ $# -gt 0 ]; then',
    '    exec  "$@"',
    'else',
    "    exec  '/bin/bash'",
    'fi',
    ''
  ].join('\n'))
})

t.test('CLI arguments replace CMD but keep ENTRYPOINT; neither gives /bin/sh', async t => {
  const both = rcText({ config: { Entrypoint: ['/entry', '-x'], Cmd: ['run'] } }, URI)
  t.match(both, `    exec '/entry' '-x' "$@"\n`)
  t.match(both, "    exec '/entry' '-x' 'run'\n")
  t.match(rcText({}, URI), "    exec  '/bin/sh'\n")
})

t.test('labels with newlines stay comments', async t => {
  const rc = rcText({ config: { Labels: { 'a\nb': 'line1\nline2' } } }, URI)
  t.match(rc, '# a b line1 line2\n')
})

const HOSTILE = [
  "it's", '$(touch pwned1)', '`touch pwned2`', '"; touch pwned3; "', "'; touch pwned4; '", 'new\nline; touch pwned5',
  '${HOME}', '\\', ' spaced  out ', '', '*', '-n', '$\'x\'', '\u00e9\u4e2d'
]

t.test('shell quoting turns any string back into itself', async t => {
  const script = `printf '%s\\0' ${HOSTILE.map(shellQuote).join(' ')}`
  const r = spawnSync('sh', ['-c', script], { encoding: 'utf8' })
  t.same(r.stdout.split('\0').slice(0, -1), HOSTILE)
})

t.test('no label, env, command, entrypoint or workdir value can run code from /etc/rc', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'rc-inject-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const workdir = join(dir, "w $(touch pwned6) `touch pwned7` ' \" \nx")
  const config: ImageConfig = {
    config: {
      Labels: { "k'\n touch pwned8": "v\ntouch pwned9\n$(touch pwned10)" },
      Env: ['A=1\ntouch pwned11'],
      Entrypoint: ['printf', '%s|'],
      Cmd: HOSTILE,
      WorkingDir: workdir
    }
  }
  const rc = join(dir, 'rc')
  writeFileSync(rc, rcText(config, "docker://x#y:z\n$(touch pwned12)"))
  for (const sh of ['sh', 'bash']) {
    const r = spawnSync(sh, [rc], { cwd: dir, encoding: 'utf8' })
    t.equal(r.status, 0, r.stderr)
    t.equal(r.stdout, HOSTILE.map(h => `${h}|`).join(''), `${sh}: the command words arrive intact`)
    const args = spawnSync(sh, [rc, 'a b', '$(touch pwned13)'], { cwd: dir, encoding: 'utf8' })
    t.equal(args.stdout, 'a b|$(touch pwned13)|', `${sh}: arguments replace CMD`)
  }
  t.same(readdirSync(dir).filter(f => f.startsWith('pwned')), [], 'nothing was executed')
  t.same(readdirSync(dir).sort(), ['rc', "w $(touch pwned6) `touch pwned7` ' \" \nx"].sort(), 'the working directory was created as named')
})

t.test('/etc/environment keeps entries verbatim but a newline cannot start a second variable', async t => {
  t.equal(environmentText({ config: { Env: ['PATH=/usr/bin:/bin', 'A="quoted value"', 'B=x\nLD_PRELOAD=/evil.so'] } }),
    'PATH=/usr/bin:/bin\nA="quoted value"\nB=x LD_PRELOAD=/evil.so\n')
  t.equal(environmentText({ config: { Env: null } }), '')
})

t.test('/etc/fstab binds every volume onto itself, escaping blanks', async t => {
  t.equal(fstabText({ config: { Volumes: { '/data': {}, '/my vol': {} } } }),
    '${ENROOT_ROOTFS}/data /data none x-create=dir,bind,rw,nosuid,nodev\n' +
    '${ENROOT_ROOTFS}/my\\040vol /my\\040vol none x-create=dir,bind,rw,nosuid,nodev\n')
  t.equal(fstabText({}), '')
})

t.test('the config layer has four 0644 files and the WorkingDir directory', async t => {
  const files = imageFiles({ config: { WorkingDir: '/workspace' } }, URI)
  t.same(files.map(f => [f.path, f.mode.toString(8), f.kind ?? 'file']), [
    ['/etc/fstab', '644', 'file'], ['/etc/environment', '644', 'file'], ['/etc/rc', '644', 'file'],
    ['/etc/rc.local', '644', 'file'], ['/workspace', '755', 'directory']
  ])
  t.equal(files[3]?.content, RC_LOCAL)
  t.equal(RC_LOCAL.split('\n').filter(l => l.startsWith('#')).length, 2)
  t.equal(imageFiles({ config: { WorkingDir: '/a/../../etc' } }, URI).length, 4, 'a WorkingDir with .. is left to rc')
  t.equal(imageFiles({ config: { WorkingDir: '/' } }, URI).length, 4)
})
