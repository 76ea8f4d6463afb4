import t from 'tap'
import { parseFstab, parseMountArg, splitPasses, unescapeField, MS } from '../../launcher/src/pipeline/fstab.js'

const first = (line: string, cwd?: string) => {
  const e = parseFstab(line, 'f', cwd === undefined ? {} : { cwd })[0]
  if (e === undefined) throw new Error('no entry')
  return e
}
const fields = (line: string) => { const { op } = first(line); return [op.source, op.target, op.fstype] }

t.test('rule 1: `/src bind` binds /src onto itself', async t => {
  t.same(fields('/src bind'), ['/src', '/src', 'none'])
  t.equal(first('/src ro,bind').op.flags, MS.BIND | MS.RDONLY)
})

t.test('rule 2: options in the third field; a target named none becomes the source', async t => {
  t.same(fields('/src /dst bind'), ['/src', '/dst', 'none'])
  t.same(fields('/src none rbind'), ['/src', '/src', 'none'])
  const pyxis = first('/a /b x-create=auto,rbind,ro').op
  t.same([pyxis.create, pyxis.flags], ['auto', MS.BIND | MS.REC | MS.RDONLY])
})

t.test('rule 3: tmpfs and a lone source', async t => {
  const tmp = first('tmpfs /scratch').op
  t.same([tmp.source, tmp.target, tmp.fstype, tmp.flags, tmp.data], ['tmpfs', '/scratch', 'tmpfs', 0, ''])
  const lone = first('/data').op
  t.same([lone.source, lone.target, lone.fstype, lone.flags, lone.create], ['/data', '/data', 'none', MS.BIND | MS.REC, 'auto'])
  t.same(fields('proc /proc proc'), ['proc', '/proc', 'proc'], 'a real type keeps empty options')
  t.equal(first('proc /proc proc').op.flags, 0)
})

t.test('rule 4: an entry that stays incomplete names the line and the file', async t => {
  t.throws(() => parseFstab('tmpfs', '/etc/x.fstab'), { code: 'CONFIG', message: 'invalid fstab entry: "tmpfs" at /etc/x.fstab' })
})

t.test('option words become MS_* bits, negations clear them, propagation is separate', async t => {
  const op = first('none /x none bind,ro,rw,nosuid,suid,nodev,noexec,noatime,atime,relatime,strictatime,lazytime,sync,async,dirsync,mand,nomand,nodiratime,remount,rslave,private').op
  t.equal(op.flags, MS.BIND | MS.NODEV | MS.NOEXEC | MS.RELATIME | MS.STRICTATIME | MS.LAZYTIME | MS.DIRSYNC | MS.NODIRATIME | MS.REMOUNT)
  t.same(op.propagation, [MS.SLAVE | MS.REC, MS.PRIVATE])
  t.same(first('a /b none rshared,shared,runbindable,unbindable,rprivate,slave').op.propagation,
    [MS.SHARED | MS.REC, MS.SHARED, MS.UNBINDABLE | MS.REC, MS.UNBINDABLE, MS.PRIVATE | MS.REC, MS.SLAVE])
})

t.test('fstab-only words are ignored, extensions and unknown words are kept apart', async t => {
  const op = first('tmpfs /t tmpfs defaults,auto,noauto,user,nouser,users,owner,group,mode=755,size=1g,x-create=dir,nofail,silent').op
  t.same([op.data, op.create, op.nofail, op.silent, op.flags], ['mode=755,size=1g', 'dir', true, true, MS.SILENT])
  const loud = first('a /b none bind,silent,loud').op
  t.same([loud.silent, loud.flags], [false, MS.BIND])
  const det = first('none /proc none x-detach,nofail').op
  t.same([det.detach, det.move, det.nofail], [true, false, true])
  const mv = first('/a /b none x-move').op
  t.same([mv.move, mv.flags], [true, MS.MOVE])
  t.equal(first('/a /b none x-create=file,bind').op.create, 'file')
})

t.test('octal escapes are decoded in every field', async t => {
  t.equal(unescapeField('a\\040b\\011c\\012d\\134e'), 'a b\tc\nd\\e')
  t.same(fields('/my\\040dir /in\\040side none bind'), ['/my dir', '/in side', 'none'])
})

t.test('passes: only -1 and 0 are mounted; freq stands in for a zero pass', async t => {
  const text = ['a /a none bind', 'b /b none bind 0 -1', 'c /c none bind -1', 'd /d none bind 0 1', 'e /e none bind 2 0', 'f /f none bind 0 0', '# c', ''].join('\n')
  const entries = parseFstab(text, 'f')
  t.same(entries.map(e => e.pass), [0, -1, -1, 1, 2, 0])
  const { early, late } = splitPasses(entries)
  t.same(early.map(o => o.source), ['b', 'c'])
  t.same(late.map(o => o.source), ['a', 'f'])
  t.same(entries.map(e => e.op.origin), ['f:1', 'f:2', 'f:3', 'f:4', 'f:5', 'f:6'])
})

t.test('${VAR} substitution applies only when an environment is given', async t => {
  const [e] = parseFstab('${ENROOT_ROOTFS}/vol /vol none x-create=dir,bind,rw', 'f', { env: { ENROOT_ROOTFS: '/r' } })
  t.equal(e?.op.source, '/r/vol')
  t.equal(parseFstab('${X} /y none bind', 'f')[0]?.op.source, '${X}')
})

t.test('hostile targets are passed through as written, to be confined by the native side', async t => {
  t.equal(first('/a ../../../etc none bind').op.target, '../../../etc')
  t.equal(first('/a /../../etc/shadow none bind').op.target, '/../../etc/shadow')
})

t.test('--mount: colon-separated, validated, relative bind sources resolve against the caller', async t => {
  const e = parseMountArg('.:/mnt', '/home/u')
  t.same([e.op.source, e.op.target, e.op.fstype, e.op.flags, e.op.origin], ['/home/u', '/mnt', 'none', MS.BIND | MS.REC, '--mount'])
  t.equal(parseMountArg('tmpfs:/t:tmpfs:size=1m', '/').op.data, 'size=1m')
  t.equal(parseMountArg('data:/x:none:bind', '/w').op.source, '/w/data')
  for (const bad of ['', 'a b:/c', ':/x', '/x:', '/a::/b', 'a:\tb']) {
    t.throws(() => parseMountArg(bad, '/'), { code: 'INVALID', message: `Invalid argument: ${bad}` }, JSON.stringify(bad))
  }
})

t.test('a whole op, as the engine receives it', async t => {
  t.same(first('/dev/shm /dev/shm none x-create=dir,bind,rw,nosuid,nodev,noexec,rslave 0 -1'), {
    pass: -1,
    op: {
      source: '/dev/shm', target: '/dev/shm', fstype: 'none', flags: MS.BIND | MS.NOSUID | MS.NODEV | MS.NOEXEC,
      propagation: [MS.SLAVE | MS.REC], data: '', create: 'dir', detach: false, move: false, nofail: false, silent: false, origin: 'f:1'
    }
  })
})
