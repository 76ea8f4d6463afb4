import t from 'tap'
import { mkdtempSync, writeFileSync, mkdirSync, copyFileSync, chmodSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { listDropIns, builtinMarker, hookSpecs } from '../../launcher/src/pipeline/dropins.js'
import { REPO } from '../helpers/env.js'

const made: string[] = []
t.teardown(() => { for (const d of made) rmSync(d, { recursive: true, force: true }) })
const tmp = (): string => { const d = mkdtempSync(join(tmpdir(), 'enroot-dropins-')); made.push(d); return d }

function tree (files: Record<string, [string, number]>): string {
  const root = tmp()
  for (const [rel, [text, mode]] of Object.entries(files)) {
    mkdirSync(join(root, rel, '..'), { recursive: true })
    writeFileSync(join(root, rel), text)
    chmodSync(join(root, rel), mode)
  }
  return root
}

t.test('system before user, each in lexical order, only matching extensions, only executable hooks', async t => {
  const sys = tree({
    'environ.d/20-b.env': ['', 0o644], 'environ.d/10-a.env': ['', 0o644], 'environ.d/README': ['', 0o644],
    'mounts.d/10-x.fstab': ['', 0o644], 'mounts.d/9-y.fstab': ['', 0o644],
    'hooks.d/50-run.sh': ['#!/bin/sh\n', 0o755], 'hooks.d/40-off.sh': ['#!/bin/sh\n', 0o644], 'hooks.d/60-x.txt': ['', 0o755]
  })
  const user = tree({ 'environ.d/00-u.env': ['', 0o644], 'hooks.d/01-u.sh': ['#!/bin/sh\n', 0o700] })
  const d = listDropIns(sys, user)
  t.same(d.environ, [join(sys, 'environ.d/10-a.env'), join(sys, 'environ.d/20-b.env'), join(user, 'environ.d/00-u.env')])
  t.same(d.mounts, [join(sys, 'mounts.d/10-x.fstab'), join(sys, 'mounts.d/9-y.fstab')])
  t.same(d.hooks, [
    { path: join(sys, 'hooks.d/50-run.sh'), argv: [join(sys, 'hooks.d/50-run.sh')] },
    { path: join(user, 'hooks.d/01-u.sh'), argv: [join(user, 'hooks.d/01-u.sh')] }
  ])
})

t.test('shipped marker files run built in; replaced, removed or non-executable ones do not', async t => {
  const sys = tmp()
  mkdirSync(join(sys, 'hooks.d'))
  for (const n of ['10-aptfix', '10-cgroups', '10-devices', '10-home', '10-localtime', '10-shadow']) {
    copyFileSync(join(REPO, 'hooks.d', `${n}.sh`), join(sys, 'hooks.d', `${n}.sh`))
    chmodSync(join(sys, 'hooks.d', `${n}.sh`), 0o755)
  }
  writeFileSync(join(sys, 'hooks.d', '10-home.sh'), '#!/bin/sh\necho site home hook\n')
  chmodSync(join(sys, 'hooks.d', '10-devices.sh'), 0o644)
  const user = tmp()
  mkdirSync(join(user, 'hooks.d'))
  copyFileSync(join(REPO, 'hooks.d', '10-shadow.sh'), join(user, 'hooks.d', '20-copy.sh'))
  chmodSync(join(user, 'hooks.d', '20-copy.sh'), 0o755)
  const hooks = listDropIns(sys, user).hooks.map(h => [h.path.slice(h.path.lastIndexOf('/') + 1), h.builtin])
  t.same(hooks, [
    ['10-aptfix.sh', 'aptfix'], ['10-cgroups.sh', 'cgroups'], ['10-home.sh', undefined],
    ['10-localtime.sh', 'localtime'], ['10-shadow.sh', 'shadow'], ['20-copy.sh', undefined]
  ])
})

t.test('an unknown built-in name is an ordinary hook', async t => {
  const d = tree({ 'x.sh': ['#!/bin/sh\n# enroot-builtin: no-such-hook\n', 0o755] })
  t.equal(builtinMarker(join(d, 'x.sh')), undefined)
})

t.test('the shipped drop-ins carry enroot\'s names', async t => {
  const d = listDropIns(REPO, '/nonexistent')
  t.same(d.environ.map(p => p.slice(REPO.length + 1)), ['environ.d/10-terminal.env'])
  t.same(d.mounts.map(p => p.slice(REPO.length + 1)), ['mounts.d/10-system.fstab', 'mounts.d/20-config.fstab'])
  t.same(d.hooks.map(h => h.builtin), ['aptfix', 'cgroups', 'devices', 'home', 'localtime', 'shadow', 'nvidia', 'mellanox'])
  // the opt-in extras (hooks.d/extra/ = <datadir>/enroot/hooks.d) are markers too, and run once linked in
  t.same(hookSpecs(join(REPO, 'hooks.d', 'extra'), true).map(h => h.builtin), ['mig-config', 'slurm-pmi', 'slurm-pytorch', undefined])
})
