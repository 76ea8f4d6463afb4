// Publishing never replaces: into the cache (entries) and to the user (outputs).
import t from 'tap'
import { writeFileSync, readFileSync, statSync, readdirSync, mkdtempSync, rmSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { publishEntry, publishOutput } from '../../launcher/src/cache/publish.js'

function dir (t: { teardown: (fn: () => void) => void }): string {
  const d = mkdtempSync(join(tmpdir(), 'enroot-publish-'))
  t.teardown(() => { rmSync(d, { recursive: true, force: true }) })
  return d
}

t.test('an entry is published read-only and the temporary name disappears', async t => {
  const d = dir(t)
  writeFileSync(join(d, 'tmp'), 'data')
  t.equal(await publishEntry(join(d, 'tmp'), join(d, 'final'), 0o444), true)
  t.equal(readFileSync(join(d, 'final'), 'utf8'), 'data')
  t.equal(statSync(join(d, 'final')).mode & 0o777, 0o444)
  t.notOk(existsSync(join(d, 'tmp')))
})

t.test('an existing entry is kept, never replaced, and the late copy is discarded', async t => {
  const d = dir(t)
  writeFileSync(join(d, 'final'), 'first')
  writeFileSync(join(d, 'tmp'), 'second')
  t.equal(await publishEntry(join(d, 'tmp'), join(d, 'final'), 0o444), false)
  t.equal(readFileSync(join(d, 'final'), 'utf8'), 'first')
  t.same(readdirSync(d), ['final'])
})

t.test('an output may be a hard link to the entry', async t => {
  const d = dir(t)
  writeFileSync(join(d, 'entry'), 'image', { mode: 0o444 })
  t.equal(await publishOutput(join(d, 'entry'), join(d, 'out.sqsh'), true), 'link')
  t.equal(statSync(join(d, 'out.sqsh')).ino, statSync(join(d, 'entry')).ino)
})

t.test('otherwise the output is the user\'s own copy with ordinary permissions, and no temporary remains', async t => {
  const d = dir(t)
  writeFileSync(join(d, 'entry'), 'image', { mode: 0o444 })
  t.equal(await publishOutput(join(d, 'entry'), join(d, 'out.sqsh'), false), 'copy')
  const st = statSync(join(d, 'out.sqsh'))
  t.not(st.ino, statSync(join(d, 'entry')).ino)
  t.equal(st.mode & 0o200, 0o200, 'writable by its owner')
  t.equal(readFileSync(join(d, 'out.sqsh'), 'utf8'), 'image')
  t.same(readdirSync(d).sort(), ['entry', 'out.sqsh'])
})

t.test('an existing output is never replaced: File already exists', async t => {
  const d = dir(t)
  writeFileSync(join(d, 'entry'), 'image')
  writeFileSync(join(d, 'out.sqsh'), 'mine')
  for (const link of [true, false]) {
    await t.rejects(publishOutput(join(d, 'entry'), join(d, 'out.sqsh'), link), { code: 'EXISTS', message: `File already exists: ${join(d, 'out.sqsh')}` })
    t.equal(readFileSync(join(d, 'out.sqsh'), 'utf8'), 'mine')
  }
  t.same(readdirSync(d).sort(), ['entry', 'out.sqsh'], 'no temporary left')
})
