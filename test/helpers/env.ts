// Shared test plumbing: the unprivileged user the product runs as, per-test directories, and the
// must-work rule (in CI a missing kernel feature or service fails the test instead of skipping it).
import { execFileSync, spawn, type SpawnOptions } from 'node:child_process'
import { mkdtempSync, chownSync, rmSync, mkdirSync } from 'node:fs'
import { join, resolve, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const ENROOT = join(REPO, 'bin', 'enroot')
export const MUST_WORK = process.env.ENROOT_TEST_MUST_WORK === '1'
export const IS_ROOT = process.getuid?.() === 0

export interface TestUser { name: string, uid: number, gid: number, home: string }

const USER_NAME = 'enroot-test'
let cachedUser: TestUser | undefined

/** The non-root account the suite runs the product as; created on first use (the suite runs as root). */
export function testUser (): TestUser {
  if (cachedUser !== undefined) return cachedUser
  const lookup = (): string | undefined => {
    try { return execFileSync('getent', ['passwd', USER_NAME], { encoding: 'utf8' }).trim() } catch { return undefined }
  }
  let line = lookup()
  if (line === undefined) {
    if (!IS_ROOT) throw new Error(`test user ${USER_NAME} is missing and the suite is not root`)
    try { execFileSync('useradd', ['-m', '-s', '/bin/sh', USER_NAME], { stdio: 'ignore' }) } catch {}
    line = lookup()
    if (line === undefined) throw new Error(`could not create test user ${USER_NAME}`)
  }
  const f = line.split(':')
  cachedUser = { name: USER_NAME, uid: Number(f[2]), gid: Number(f[3]), home: f[5] as string }
  return cachedUser
}

/** The parts of tap's Test that these helpers use (tap's own signatures are wider). */
export interface TapLike {
  fail: (msg: string) => unknown
  skip: (...args: any[]) => unknown
  teardown: (fn: () => any) => unknown
}

/** Skip when a feature is missing, except under ENROOT_TEST_MUST_WORK=1 where it is a failure. */
export function requireFeature (t: TapLike, what: string, ok: boolean, why = ''): boolean {
  if (ok) return true
  const msg = `${what} is not available${why === '' ? '' : `: ${why}`}`
  if (MUST_WORK) t.fail(`${msg} (ENROOT_TEST_MUST_WORK=1)`)
  else t.skip(msg)
  return false
}

/** A fresh directory owned by the test user, removed after the test. */
export function userTmp (t: TapLike, prefix = 'enroot-test-'): string {
  const dir = mkdtempSync(join(process.env.ENROOT_TEST_TMP ?? '/tmp', prefix))
  if (IS_ROOT) { const u = testUser(); chownSync(dir, u.uid, u.gid) }
  t.teardown(() => { rmSync(dir, { recursive: true, force: true, maxRetries: 3 }) })
  return dir
}

/** Directories for an isolated enroot configuration (no shared state between tests). */
export function enrootEnv (base: string, extra: Record<string, string> = {}): Record<string, string> {
  const u = IS_ROOT ? testUser() : undefined
  const dirs = { cache: join(base, 'cache'), data: join(base, 'data'), config: join(base, 'config'), run: join(base, 'run'), tmp: join(base, 'tmp') }
  for (const d of Object.values(dirs)) {
    mkdirSync(d, { recursive: true })
    if (u !== undefined) chownSync(d, u.uid, u.gid)
  }
  return {
    PATH: '/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin',
    HOME: u?.home ?? process.env.HOME ?? '/',
    USER: u?.name ?? process.env.USER ?? 'root',
    LANG: 'C.UTF-8',
    ENROOT_CACHE_PATH: dirs.cache,
    ENROOT_DATA_PATH: dirs.data,
    ENROOT_CONFIG_PATH: dirs.config,
    ENROOT_RUNTIME_PATH: dirs.run,
    ENROOT_TEMP_PATH: dirs.tmp,
    ...extra
  }
}

export interface RunResult { status: number | null, signal: NodeJS.Signals | null, stdout: string, stderr: string }

/** Run a command as the test user (when the suite is root), collecting its output. */
export async function runAsUser (cmd: string, args: readonly string[], opts: SpawnOptions & { input?: string } = {}): Promise<RunResult> {
  const u = IS_ROOT ? testUser() : undefined
  // tap injects NODE_OPTIONS (its loaders and an exit hook writing to .tap/ as root); the product must
  // run exactly as a user would run it.
  const env = { ...(opts.env ?? process.env) }
  delete env.NODE_OPTIONS
  return await new Promise((resolve, reject) => {
    // tap's processinfo plugin also patches spawn to put itself back into a node child's NODE_OPTIONS,
    // so the variable is removed by env(1) right before the real command runs.
    const child = spawn('/usr/bin/env', ['-u', 'NODE_OPTIONS', cmd, ...args], {
      ...opts,
      env,
      ...(u !== undefined ? { uid: u.uid, gid: u.gid } : {}),
      stdio: ['pipe', 'pipe', 'pipe']
    })
    let stdout = ''
    let stderr = ''
    child.stdout?.on('data', (d: Buffer) => { stdout += d.toString() })
    child.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
    child.on('error', reject)
    child.on('close', (status, signal) => resolve({ status, signal, stdout, stderr }))
    // a program that exits without reading stdin must not crash the test with EPIPE
    child.stdin?.on('error', () => {})
    child.stdin?.end(opts.input ?? '')
  })
}

/** `enroot ARGS` as the test user with an isolated configuration. */
export async function enroot (args: readonly string[], env: Record<string, string>, opts: SpawnOptions & { input?: string } = {}): Promise<RunResult> {
  return await runAsUser(process.execPath, [ENROOT, ...args], { env, ...opts })
}
