// The caller's passwd and group entries: /etc/passwd and /etc/group first (no process spawned, which keeps
// `enroot start` fast), `getent` only when the files do not know the id (LDAP, SSSD on cluster nodes).
import { childProcess } from '../../util/builtins.js'
import { readText } from './util.js'

export interface PasswdEntry { name: string, uid: number, gid: number, gecos: string, home: string, shell: string }
export interface GroupEntry { name: string, gid: number }

function findLine (db: 'passwd' | 'group', id: number): string | undefined {
  const text = readText(`/etc/${db}`) ?? ''
  const hit = text.split('\n').find(l => l.split(':')[2] === String(id))
  if (hit !== undefined) return hit
  const r = childProcess().spawnSync('getent', [db, String(id)], { encoding: 'utf8' })
  return r.status === 0 ? r.stdout.split('\n')[0] : undefined
}

export function lookupUser (uid: number): PasswdEntry | undefined {
  const line = findLine('passwd', uid)
  if (line === undefined) return undefined
  const f = line.split(':')
  return { name: f[0] ?? '', uid: Number(f[2]), gid: Number(f[3]), gecos: f[4] ?? '', home: f[5] ?? '', shell: f[6] ?? '' }
}

export function lookupGroup (gid: number): GroupEntry | undefined {
  const line = findLine('group', gid)
  if (line === undefined) return undefined
  const f = line.split(':')
  return { name: f[0] ?? '', gid: Number(f[2]) }
}
