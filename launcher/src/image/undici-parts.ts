// The parts of undici the registry client uses, loaded file by file instead of through undici's index.
//
// Why: undici's index.js loads all of undici (fetch, WebSocket, caches, mocks, 111 files) and, through
// them, Node's own bundled copy of undici; measured here, 130–290 ms under load versus 55–85 ms for the
// 27 files that undici-files.cts names. A warm `enroot import` (budget 0.2 s) spends most of its time
// loading code, so this is the largest single saving on that path. The bundle, dist/enroot.cjs, carries
// these files (scripts/bundle.mjs, with HTTP/2 left out); they initialise only when a command first
// reaches the registry client. undici 7 has no "exports" map, so these paths are reachable;
// the versions are pinned in package-lock.json, and test/image/http.test.ts exercises every part.
// Types come from undici's own declarations (`import type` is erased: it loads nothing).
import { setFlagsFromString } from 'node:v8'
import type { Dispatcher } from 'undici'
import files from './undici-files.cjs'

// undici parses HTTP with llhttp compiled to WebAssembly. V8 compiles it twice: at once with its
// baseline compiler (Liftoff), then again in the background with its optimising one, and a process
// cannot exit before background compilation finishes. Measured on a warm import: about 0.1 s of CPU and
// 0.1–0.4 s before exit, for code that parses a few response headers (a blob body is consumed in one
// step per chunk, not byte by byte, so downloads do not need the optimised code either). Set before
// undici compiles the module (on its first connection, not when its files load); it only concerns
// WebAssembly, which nothing else in the launcher uses.
setFlagsFromString('--liftoff-only')

export type { Dispatcher }

// What undici's index does first: every dispatcher gets the request API (request, stream, pipeline,
// upgrade, connect). undici's own code relies on it (ProxyAgent tunnels with `client.connect()`).
Object.assign(files.Dispatcher.prototype, files.dispatcherApi)

export const { Agent, loadEnvHttpProxyAgent, redirectInterceptor } = files
const { parseURL } = files

/**
 * undici's top-level `request(url, { dispatcher, ... })` without its index: the same URL checks
 * (util.parseURL refuses non-http(s) URLs with undici's InvalidArgumentError) and the same
 * origin/path split, then the request API of the given dispatcher.
 */
export async function request (url: string, opts: Omit<Dispatcher.RequestOptions, 'origin' | 'path'> & { dispatcher: Dispatcher }): Promise<Dispatcher.ResponseData> {
  const u = parseURL(url)
  const { dispatcher, ...rest } = opts
  return await dispatcher.request({ ...rest, origin: u.origin, path: u.search !== '' ? `${u.pathname}${u.search}` : u.pathname })
}
