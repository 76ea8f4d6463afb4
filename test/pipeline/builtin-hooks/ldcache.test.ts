import t from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { parseLdCache, writeLdCache, libcmp, mergeEntries, sortEntries, resolveInRoot, readConfined, CACHE_FLAGS } from '../../../launcher/src/pipeline/builtin-hooks/ldcache.js'

const LDCONFIG = ['/sbin/ldconfig', '/usr/sbin/ldconfig'].find(p => existsSync(p))
const HOST_CACHE = '/etc/ld.so.cache'

/** `ldconfig -p -C FILE` → [soname, path] pairs, in the order glibc prints them (the cache order). */
function glibcView (file: string): Array<[string, string]> {
  const out = execFileSync(LDCONFIG as string, ['-p', '-C', file], { encoding: 'utf8' })
  return out.split('\n').slice(1).map(l => /^\s+(\S+) \(([^)]*)\) => (.*)$/.exec(l)).filter(m => m !== null).map(m => [m[1] as string, m[3] as string])
}

t.test('libcmp orders version numbers numerically, as glibc does', async t => {
  t.ok(libcmp('libfoo.so.10', 'libfoo.so.9') > 0)
  t.ok(libcmp('libfoo.so.1', 'libfoo.so.1') === 0)
  t.ok(libcmp('libfoo.so', 'libfoo.so.1') < 0)
  t.ok(libcmp('liba.so', 'libb.so') < 0)
  t.same(sortEntries([{ key: 'liba.so.1', value: '', flags: 0x303, hwcap: 0n }, { key: 'libz.so.1', value: '', flags: 0x303, hwcap: 0n }]).map(e => e.key), ['libz.so.1', 'liba.so.1'])
})

t.test('reads the host cache exactly as ldconfig -p does', { skip: LDCONFIG === undefined || !existsSync(HOST_CACHE) }, async t => {
  const ours = parseLdCache(readFileSync(HOST_CACHE)).map(e => [e.key, e.value])
  t.same(ours, glibcView(HOST_CACHE))
})

t.test('a written cache is read back by glibc, every library resolving', { skip: LDCONFIG === undefined }, async t => {
  const dir = mkdtempSync(join(tmpdir(), 'enroot-ldcache-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const injected = [
    { key: 'libcuda.so.1', value: '/usr/local/nvidia/lib64/libcuda.so.1', flags: CACHE_FLAGS.x8664, hwcap: 0n },
    { key: 'libcuda.so', value: '/usr/local/nvidia/lib64/libcuda.so', flags: CACHE_FLAGS.x8664, hwcap: 0n },
    { key: 'libnvidia-ml.so.1', value: '/usr/local/nvidia/lib64/libnvidia-ml.so.1', flags: CACHE_FLAGS.x8664, hwcap: 0n },
    { key: 'libcuda.so.1', value: '/usr/local/nvidia/lib/libcuda.so.1', flags: CACHE_FLAGS.libc6, hwcap: 0n }
  ]
  const image = [
    { key: 'libcuda.so.1', value: '/usr/lib/x86_64-linux-gnu/libcuda.so.1', flags: CACHE_FLAGS.x8664, hwcap: 0n },
    { key: 'libc.so.6', value: '/lib/x86_64-linux-gnu/libc.so.6', flags: CACHE_FLAGS.x8664, hwcap: 0n }
  ]
  const file = join(dir, 'ld.so.cache')
  writeFileSync(file, writeLdCache(mergeEntries(image, injected)))
  const view = glibcView(file)
  t.same(new Set(view.map(([k, v]) => `${k}=${v}`)), new Set([
    'libcuda.so.1=/usr/local/nvidia/lib64/libcuda.so.1', 'libcuda.so=/usr/local/nvidia/lib64/libcuda.so',
    'libnvidia-ml.so.1=/usr/local/nvidia/lib64/libnvidia-ml.so.1', 'libcuda.so.1=/usr/local/nvidia/lib/libcuda.so.1',
    'libc.so.6=/lib/x86_64-linux-gnu/libc.so.6'
  ]), 'the image stub of libcuda.so.1 is replaced, the 32-bit entry kept apart')
  t.same(parseLdCache(readFileSync(file)).map(e => [e.key, e.value]), view, 'our reader agrees with glibc on our writer')
})

t.test('the host cache survives a read-write round trip unchanged for glibc', { skip: LDCONFIG === undefined || !existsSync(HOST_CACHE) }, async t => {
  const dir = mkdtempSync(join(tmpdir(), 'enroot-ldcache-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'c')
  writeFileSync(file, writeLdCache(parseLdCache(readFileSync(HOST_CACHE))))
  t.same(glibcView(file), glibcView(HOST_CACHE))
})

t.test('garbage and empty input give no entries', async t => {
  t.same(parseLdCache(Buffer.alloc(0)), [])
  t.same(parseLdCache(Buffer.from('not a cache at all, definitely not one')), [])
})

t.test('paths in the image resolve as in the container: absolute links anchored at the rootfs, .. stops there', async t => {
  const root = mkdtempSync(join(tmpdir(), 'enroot-resolve-'))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  mkdirSync(join(root, 'usr/local/cuda-12.4/compat'), { recursive: true })
  mkdirSync(join(root, 'etc/alternatives'), { recursive: true })
  symlinkSync('/etc/alternatives/cuda', join(root, 'usr/local/cuda'))
  symlinkSync('/usr/local/cuda-12.4', join(root, 'etc/alternatives/cuda'))
  symlinkSync('../../../../../../etc/passwd', join(root, 'etc/escape'))
  writeFileSync(join(root, 'usr/local/cuda-12.4/compat/x'), 'in the image')
  t.equal(resolveInRoot(root, 'usr/local/cuda/compat'), join(root, 'usr/local/cuda-12.4/compat'))
  t.equal(readConfined(root, 'usr/local/cuda/compat/x')?.toString(), 'in the image')
  t.equal(resolveInRoot(root, 'etc/escape'), undefined, 'the image has no /etc/passwd: nothing read from the host')
  symlinkSync('loop', join(root, 'loop'))
  t.equal(resolveInRoot(root, 'loop'), undefined)
})
