import t from 'tap'
import { mkdtempSync, mkdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, statSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { applyHostSide } from '../../../launcher/src/pipeline/builtin-hooks/apply.js'
import { emptyOutput } from '../../../launcher/src/pipeline/builtin-hooks/types.js'

function dirs (t: { teardown: (fn: () => void) => void }): { rootfs: string, run: string, outside: string } {
  const base = mkdtempSync(join(tmpdir(), 'enroot-apply-'))
  t.teardown(() => rmSync(base, { recursive: true, force: true }))
  const d = { rootfs: join(base, 'rootfs'), run: join(base, 'run'), outside: join(base, 'outside') }
  for (const p of Object.values(d)) mkdirSync(p)
  mkdirSync(join(d.rootfs, 'etc'))
  return d
}

t.test('runtime files and links are written on the host side, rootfs files inside the rootfs', async t => {
  const d = dirs(t)
  const out = emptyOutput()
  out.files = [{ path: join(d.run, 'passwd'), inRootfs: false, content: 'p\n', mode: 0o644 }, { path: '/etc/apt/apt.conf.d/enroot', inRootfs: true, content: 'a\n', mode: 0o644 }]
  out.links = [{ path: join(d.run, 'dev', 'fd'), target: '/proc/self/fd' }]
  out.dirs = [{ path: '/home/u', mode: 0o700 }]
  applyHostSide(out, d.rootfs)
  t.equal(readFileSync(join(d.run, 'passwd'), 'utf8'), 'p\n')
  t.equal(readFileSync(join(d.rootfs, 'etc/apt/apt.conf.d/enroot'), 'utf8'), 'a\n')
  t.equal(readlinkSync(join(d.run, 'dev', 'fd')), '/proc/self/fd')
  t.equal(statSync(join(d.rootfs, 'home/u')).mode & 0o777, 0o700)
})

t.test('a hostile image cannot redirect a write through a symlink', async t => {
  const d = dirs(t)
  symlinkSync(join(d.outside, 'victim'), join(d.rootfs, 'etc', 'passwd'))
  symlinkSync(d.outside, join(d.rootfs, 'home'))
  const file = emptyOutput()
  file.files = [{ path: '/etc/passwd', inRootfs: true, content: 'x', mode: 0o644 }]
  t.throws(() => applyHostSide(file, d.rootfs), { code: 'ELOOP' })
  const dir = emptyOutput()
  dir.dirs = [{ path: '/home/u', mode: 0o700 }]
  t.throws(() => applyHostSide(dir, d.rootfs), { code: 'HOOK' })
  const up = emptyOutput()
  up.files = [{ path: '/../outside/x', inRootfs: true, content: 'x', mode: 0o644 }]
  t.throws(() => applyHostSide(up, d.rootfs), { code: 'HOOK' })
  t.notOk(existsSync(join(d.outside, 'victim')))
  t.notOk(existsSync(join(d.outside, 'u')))
})
