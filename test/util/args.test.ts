import t from 'tap'
import { oneOperand, parseArgs, type OptionSpec } from '../../launcher/src/util/args.js'

const specs: OptionSpec[] = [
  { name: 'arch', long: 'arch', short: 'a', value: true },
  { name: 'force', long: 'force', short: 'f' },
  { name: 'env', long: 'env', short: 'e', value: true, repeat: true }
]

t.test('accepts -x VAL, --x VAL and --x=VAL', async t => {
  t.same(parseArgs(['-a', 'x86_64', 'uri'], specs, 'u').opts, { arch: 'x86_64' })
  t.same(parseArgs(['--arch', 'arm64', 'uri'], specs, 'u').opts, { arch: 'arm64' })
  t.same(parseArgs(['--arch=ppc64le', 'uri'], specs, 'u').opts, { arch: 'ppc64le' })
})

t.test('stops at the first non-option so that container commands keep their own options', async t => {
  const p = parseArgs(['-f', 'name', '-a', 'x'], specs, 'u')
  t.same(p.opts, { force: true })
  t.same(p.rest, ['name', '-a', 'x'])
})

t.test('stops at -- and keeps what follows', async t => {
  t.same(parseArgs(['--', '-f'], specs, 'u').rest, ['-f'])
})

t.test('collects repeated options in order', async t => {
  t.same(parseArgs(['-e', 'A=1', '--env=B', 'n'], specs, 'u').opts, { env: ['A=1', 'B'] })
})

t.test('rejects unknown options, bundled short options and empty values with the usage', async t => {
  t.throws(() => parseArgs(['-x'], specs, 'USAGE'), { code: 'USAGE', usage: 'USAGE' })
  t.throws(() => parseArgs(['-fa', 'x'], specs, 'USAGE'), { code: 'USAGE' })
  t.throws(() => parseArgs(['--arch='], specs, 'USAGE'), { code: 'USAGE' })
  t.throws(() => parseArgs(['--arch'], specs, 'USAGE'), { code: 'USAGE' })
  t.throws(() => parseArgs(['--force=1'], specs, 'USAGE'), { code: 'USAGE' })
})

t.test('-h anywhere before the first positional asks for help', async t => {
  t.ok(parseArgs(['-f', '-h'], specs, 'u').help)
})

t.test('a one-operand command names the missing operand, refuses a second, and shows its usage', async t => {
  t.equal(oneOperand(parseArgs(['-f', 'img.sqsh'], specs, 'u'), 'IMAGE', 'u'), 'img.sqsh')
  t.throws(() => oneOperand(parseArgs(['-f'], specs, 'usage text'), 'IMAGE', 'usage text'), { message: 'Missing argument: IMAGE', usage: 'usage text' })
  t.throws(() => oneOperand(parseArgs(['a', 'b', 'c'], specs, 'u'), 'NAME', 'u'), { message: 'Unexpected argument: b', usage: 'u' })
})
