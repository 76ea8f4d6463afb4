// The two small modules the bundle puts in place of node:assert and node:http for undici's files
// (scripts/bundle.mjs, launcher/src/image/undici-assert.cts and undici-http.cts): they must behave as
// Node's own do for what undici uses of them. The build itself checks which uses those are.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import nodeAssert from 'node:assert'
import { maxHeaderSize as nodeMaxHeaderSize } from 'node:http'
import { fileURLToPath } from 'node:url'
import assert from '../../launcher/src/image/undici-assert.cjs'
import httpStub from '../../launcher/src/image/undici-http.cjs'

/** What a call throws, or undefined. */
function thrown (fn: () => void): unknown {
  try { fn() } catch (err) { return err }
  return undefined
}

t.test('assert(value[, message]) throws where node:assert does, with the same kind of error', async t => {
  for (const v of [true, 1, 'x', {}, [], -1]) {
    t.equal(thrown(() => assert(v)), undefined, `${JSON.stringify(v)} passes`)
    t.equal(thrown(() => assert(v, 'message')), undefined, `${JSON.stringify(v)} passes with a message`)
  }
  for (const v of [false, 0, '', null, undefined, NaN]) {
    const mine = thrown(() => assert(v, 'the body is locked')) as nodeAssert.AssertionError
    const node = thrown(() => nodeAssert(v, 'the body is locked')) as nodeAssert.AssertionError
    t.ok(mine instanceof Error, `${String(v)}: an Error`)
    for (const k of ['name', 'code', 'message', 'expected', 'operator', 'generatedMessage'] as const) {
      t.equal(mine[k], node[k], `${String(v)}: ${k}`)
    }
    t.ok(Object.is(mine.actual, node.actual), `${String(v)}: actual`)
    t.ok(mine instanceof assert.AssertionError, 'an instance of its AssertionError')
    t.notOk((mine.stack ?? '').split('\n')[1]?.includes('undici-assert'), 'the stack starts at the caller')
  }
  const generated = thrown(() => assert(0)) as nodeAssert.AssertionError
  t.equal(generated.code, 'ERR_ASSERTION')
  t.equal(generated.generatedMessage, true)
  t.match(generated.message, /falsy/)
  const noArg = thrown(() => (assert as unknown as () => void)()) as nodeAssert.AssertionError
  t.equal(noArg.message, (thrown(() => (nodeAssert as unknown as () => void)()) as Error).message, 'no argument: Node\'s message')
  const own = new TypeError('mine')
  t.equal(thrown(() => assert(false, own)), own, 'an Error as the message is thrown itself')
  t.equal(assert.ok, assert, 'assert.ok is assert')
})

t.test("node:http's maxHeaderSize: Node's own value, also where an option sets it", async t => {
  t.equal(httpStub.maxHeaderSize, nodeMaxHeaderSize, 'the default, in a process without the option')
  t.equal(typeof httpStub.IncomingMessage, 'function')
  const saved = process.env.NODE_OPTIONS
  t.teardown(() => { if (saved === undefined) delete process.env.NODE_OPTIONS; else process.env.NODE_OPTIONS = saved })
  process.env.NODE_OPTIONS = `${saved ?? ''} --max-http-header-size=32768`
  t.ok(httpStub.headerSizeMaybeSet(), 'NODE_OPTIONS may set it')
  process.env.NODE_OPTIONS = saved ?? ''
  t.equal(httpStub.headerSizeMaybeSet(), process.execArgv.some(a => a.includes('max-http-header-size')), 'otherwise only the command line')

  // a fresh process with the option on its command line, loading the module as the bundle does
  // (esbuild, which the build uses, turns the .cts into plain CommonJS)
  const { buildSync } = await import('esbuild')
  const file = fileURLToPath(new URL('../../launcher/src/image/undici-http.cts', import.meta.url))
  const js = buildSync({ entryPoints: [file], bundle: true, platform: 'node', format: 'cjs', write: false }).outputFiles[0]?.text ?? ''
  const env = { PATH: process.env.PATH ?? '' }
  const run = (...args: string[]): string => spawnSync(process.execPath, [...args, '-e', `${js}\nconsole.log(module.exports.maxHeaderSize)`], { env, encoding: 'utf8' }).stdout.trim()
  t.equal(run('--max-http-header-size=32768'), '32768', 'from the command line')
  t.equal(run(), String(nodeMaxHeaderSize), 'without it')
})
