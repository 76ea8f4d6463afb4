import t from 'tap'

/** the part of a tap Test these helpers use */
interface TeardownT { teardown: (fn: () => void | Promise<void>) => void }
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { parseCredentials, CredentialStore } from '../../launcher/src/image/credentials.js'

const env = { PATH: '/usr/bin:/bin', HOME: '/nonexistent' }

function configDir (t: TeardownT, text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'enroot-cred-'))
  writeFileSync(join(dir, '.credentials'), text)
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

t.test('parses netrc entries, one per line or spread over lines', async t => {
  t.same(parseCredentials('machine a.io login u password p\nmachine b.io\n  login v\n  password q\ndefault login x password y\n'), [
    { machine: 'a.io', login: 'u', password: 'p' },
    { machine: 'b.io', login: 'v', password: 'q' }
  ])
})

t.test('a password starting with $ is shell-evaluated, other lines pass unchanged', async t => {
  const dir = configDir(t, '')
  writeFileSync(join(dir, 'token'), 'tok-123\n')
  const text = [
    `machine nvcr.io login $oauthtoken password $(cat ${join(dir, 'token')})`,
    'machine authn.nvidia.com login $oauthtoken password $MY_KEY',
    'machine short.io login $user',
    'machine q.io login u password p$q'
  ].join('\n')
  const e = parseCredentials(text, { ...env, MY_KEY: 'from-env' })
  t.equal(e[0]?.password, 'tok-123')
  t.equal(e[1]?.password, 'from-env')
  t.equal(e[3]?.password, 'p$q', 'a $ inside a password is not evaluated')
  t.equal(e[0]?.login, '$oauthtoken', 'the login field is never evaluated')
})

t.test('matches each host separately: registry and token realm host get their own entries', async t => {
  const dir = configDir(t, [
    'machine nvcr.io login $oauthtoken password registry-key',
    'machine authn.nvidia.com login $oauthtoken password realm-key',
    'machine other.io login alice password a',
    'machine other.io login bob password b'
  ].join('\n'))
  const store = new CredentialStore(dir, env)
  t.same(store.lookup('nvcr.io', '$oauthtoken'), { login: '$oauthtoken', password: 'registry-key' })
  t.same(store.lookup('authn.nvidia.com', '$oauthtoken'), { login: '$oauthtoken', password: 'realm-key' })
  t.same(store.lookup('other.io', 'bob'), { login: 'bob', password: 'b' }, 'the entry with the user\'s login')
  t.same(store.lookup('other.io'), { login: 'alice', password: 'a' }, 'first entry without a user')
  t.equal(store.lookup('nvcr-io'), undefined, 'no regex wildcard matching')
  t.equal(store.path, join(dir, '.credentials'))
})

t.test('the shell runs only when a matching entry is looked up', async t => {
  const dir = configDir(t, '')
  const marker = join(dir, 'ran')
  writeFileSync(join(dir, '.credentials'), `machine x.io login u password $(touch ${marker}; echo p)\n`)
  const store = new CredentialStore(dir, env)
  t.equal(store.lookup('y.io'), undefined)
  const { existsSync } = await import('node:fs')
  t.notOk(existsSync(marker), 'anonymous pulls never run the user\'s commands')
  t.same(store.lookup('x.io'), { login: 'u', password: 'p' })
  t.ok(existsSync(marker))
})

t.test('a missing file means no credentials', async t => {
  const store = new CredentialStore('/nonexistent-dir', env)
  t.equal(store.text, '')
  t.equal(store.lookup('x.io'), undefined)
})
