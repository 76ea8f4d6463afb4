// node:assert for the undici files in the bundle: scripts/bundle.mjs points their
// `require('node:assert')` here (the unbundled launcher and the tests keep Node's own).
//
// Why: node:assert loads five of Node's modules (assertion errors, their colours and diffs, call
// tracking), about 1 ms of CPU in every process that talks to a registry, for checks that never fail in
// a working undici. undici's bundled files call it only as `assert(value)` or `assert(value, message)`,
// never a method of it; the build stops if one of them uses it any other way (bundle.mjs).
//
// Same throwing semantics as Node's assert.ok: nothing for a truthy value; for a falsy one, the message
// itself when it is an Error, otherwise an AssertionError (code ERR_ASSERTION, actual, expected: true,
// operator '=='). One difference: with no message, Node reads the caller's source to quote the
// expression; this says only that it was falsy.

class AssertionError extends Error {
  readonly code = 'ERR_ASSERTION'
  readonly actual: unknown
  readonly expected = true
  readonly operator = '=='
  readonly generatedMessage: boolean
  constructor (message: string, actual: unknown, generated: boolean) {
    super(message)
    this.name = 'AssertionError'
    this.actual = actual
    this.generatedMessage = generated
  }
}

function assert (value?: unknown, message?: string | Error): asserts value {
  if (value) return
  if (message instanceof Error) throw message
  const generated = message === undefined
  const text = !generated
    ? String(message)
    : arguments.length === 0 ? 'No value argument passed to `assert.ok()`' : 'The expression evaluated to a falsy value'
  const err = new AssertionError(text, value, generated)
  Error.captureStackTrace(err, assert)
  throw err
}
assert.ok = assert
assert.AssertionError = AssertionError

export = assert
