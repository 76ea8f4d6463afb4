// node:http for the undici files in the bundle: scripts/bundle.mjs points their `require('node:http')`
// here (the unbundled launcher and the tests keep Node's own).
//
// Why: node:http loads Node's HTTP client, server, agent and their helpers, about 1.5 ms of CPU in every
// process that talks to a registry, and undici takes two values from it when its files load:
//  - dispatcher/client.js: `maxHeaderSize`, the default for a client's limit on response headers. Node's
//    is its --max-http-header-size option, 16384 unless set; an option can come only from the command
//    line, NODE_OPTIONS or (Node 23.10 and later) a config file that a command-line flag names. Where any
//    of these mentions it, Node's own value is read, loading node:http as before.
//  - core/util.js: `IncomingMessage`, compared with a stream's constructor in destroy() (a request body
//    that is an HTTP server's incoming message keeps its socket). The registry client sends no request
//    bodies: destroy() meets only undici's own response bodies and sockets, never an IncomingMessage, so
//    a class of which nothing is an instance gives the same answer.
// The build stops if another undici file, or another use in these two, appears (bundle.mjs).

/** Node's default for --max-http-header-size, since Node 14 (test/image/undici-stubs.test.ts compares). */
const DEFAULT_MAX_HEADER_SIZE = 16384

const MAY_SET = /max-http-header-size|config-file/
/** Whether the options this process started with may set --max-http-header-size. */
const headerSizeMaybeSet = (): boolean =>
  process.execArgv.some(a => MAY_SET.test(a)) || MAY_SET.test(process.env.NODE_OPTIONS ?? '')

// `export =`: as in undici-files.cts, the form tsc, esbuild and the tests' loader agree on.
export = {
  maxHeaderSize: headerSizeMaybeSet() ? process.getBuiltinModule('node:http').maxHeaderSize : DEFAULT_MAX_HEADER_SIZE,
  /** Stands for node:http's IncomingMessage; nothing is an instance of it (see above). */
  IncomingMessage: class IncomingMessage {},
  headerSizeMaybeSet
}
