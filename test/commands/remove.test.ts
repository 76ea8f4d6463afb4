import t from 'tap'
import { mkdirSync, existsSync, writeFileSync, chownSync, chmodSync } from 'node:fs'
import { join } from 'node:path'
import { enroot, enrootEnv, userTmp, IS_ROOT, testUser } from '../helpers/env.js'
import { errorLine } from './fixtures.js'

function containers (data: string, names: string[]): void {
  for (const n of names) {
    mkdirSync(join(data, n, 'etc'), { recursive: true })
    writeFileSync(join(data, n, 'etc', 'f'), '')
    if (IS_ROOT) { const u = testUser(); for (const p of [join(data, n), join(data, n, 'etc'), join(data, n, 'etc', 'f')]) chownSync(p, u.uid, u.gid) }
  }
}

t.test('without --force the answer decides: only y or Y deletes, anything else skips with status 0', async t => {
  const dir = userTmp(t)
  const env = enrootEnv(dir)
  const data = join(dir, 'data')
  containers(data, ['a', 'b', 'c'])
  const r = await enroot(['remove', 'a', 'b', 'c'], env, { input: 'y\nn\nY\n' })
  t.equal(r.status, 0)
  t.same([existsSync(join(data, 'a')), existsSync(join(data, 'b')), existsSync(join(data, 'c'))], [false, true, false])
  const none = await enroot(['remove', 'b'], env, { input: '' })
  t.equal(none.status, 0)
  t.ok(existsSync(join(data, 'b')), 'no answer keeps it')
})

t.test('--force and ENROOT_FORCE_OVERRIDE delete without asking, even read-only trees', async t => {
  const dir = userTmp(t)
  const env = enrootEnv(dir)
  const data = join(dir, 'data')
  containers(data, ['a', 'b'])
  chmodSync(join(data, 'a', 'etc'), 0o555)
  t.equal((await enroot(['remove', '-f', 'a'], env)).status, 0)
  t.notOk(existsSync(join(data, 'a')))
  t.equal((await enroot(['remove', 'b'], { ...env, ENROOT_FORCE_OVERRIDE: 'y' })).status, 0)
  t.notOk(existsSync(join(data, 'b')))
})

t.test('missing and badly named containers are errors', async t => {
  const dir = userTmp(t)
  const env = enrootEnv(dir)
  const missing = await enroot(['remove', '-f', 'nope'], env)
  t.same([missing.status, errorLine(missing)], [1, `[ERROR] No such file or directory: ${join(dir, 'data', 'nope')}`])
  for (const bad of ['a/b', '..', '']) {
    const r = await enroot(['remove', '-f', bad], env)
    t.same([r.status, errorLine(r)], [1, `[ERROR] Invalid argument: ${bad}`], JSON.stringify(bad))
  }
  t.equal((await enroot(['remove'], env)).status, 1)
})
