// The require() calls of undici-parts.ts: which of undici's files the registry client loads.
//
// Why a CommonJS file: esbuild bundles a plain `require('undici/lib/…')`, so undici's code is in
// dist/enroot.cjs (scripts/bundle.mjs: one file read, no lookups in node_modules), and a require inside
// a function stays lazy there too (the proxy agents load only with a proxy). A `createRequire(import.meta.url)` in an ES module
// would stay a lookup in node_modules at run time; a static ES import could not be lazy. tsc compiles this
// file to dist/image/undici-files.cjs, where `require` is Node's own. `export =` (module.exports) because
// tsc, esbuild and the tests' loader agree on what a default import of it is, not on named ones.
import type * as Undici from 'undici'

export = {
  Dispatcher: require('undici/lib/dispatcher/dispatcher.js') as typeof Undici.Dispatcher,
  /** request, stream, pipeline, upgrade, connect: the request API that undici's index puts on every dispatcher */
  dispatcherApi: require('undici/lib/api/index.js') as Record<string, unknown>,
  Agent: require('undici/lib/dispatcher/agent.js') as typeof Undici.Agent,
  /** Only with a proxy configured: it pulls in the proxy agents (and their TLS tunnelling). */
  loadEnvHttpProxyAgent: (): typeof Undici.EnvHttpProxyAgent =>
    require('undici/lib/dispatcher/env-http-proxy-agent.js') as typeof Undici.EnvHttpProxyAgent,
  redirectInterceptor: require('undici/lib/interceptor/redirect.js') as typeof Undici.interceptors.redirect,
  parseURL: (require('undici/lib/core/util.js') as { parseURL: (url: string) => URL }).parseURL
}
