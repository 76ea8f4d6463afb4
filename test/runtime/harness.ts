// Shared plumbing for the runtime tests: feature probes, a ContainerPlan builder, and the driver that
// runs a plan as the test user (test/helpers/run-plan.mjs → dist/runtime/engine.js).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { REPO, IS_ROOT, testUser, runAsUser, requireFeature, type RunResult } from '../helpers/env.js'
import { HAVE_BUSYBOX } from '../helpers/rootfs.js'
import { parseFstab } from '../../launcher/src/pipeline/fstab.js'
import type { ContainerPlan, MountOp } from '../../launcher/src/runtime/plan-types.js'

export const DRIVER = join(REPO, 'test', 'helpers', 'run-plan.mjs')
const ADDON = join(REPO, 'native', 'build', 'Release', 'enroot_native.node')

let probed: { ok: boolean, why: string } | undefined

/** The addon (built on demand), dist/, busybox-static and unprivileged user+mount namespaces. */
export function runtimeAvailable (): { ok: boolean, why: string } {
  if (probed !== undefined) return probed
  const fail = (why: string): { ok: boolean, why: string } => (probed = { ok: false, why })
  if (!existsSync(ADDON)) {
    try { execFileSync('npm', ['run', '--silent', 'build:native'], { cwd: REPO, stdio: 'ignore' }) } catch { return fail('npm run build:native failed') }
  }
  if (!existsSync(join(REPO, 'dist', 'runtime', 'engine.js'))) return fail('dist/ is not built (npm run build)')
  if (!HAVE_BUSYBOX) return fail('busybox-static is not installed')
  try {
    const u = IS_ROOT ? testUser() : undefined
    execFileSync('unshare', ['-Urm', 'true'], { stdio: 'ignore', ...(u !== undefined ? { uid: u.uid, gid: u.gid } : {}) })
  } catch { return fail('unprivileged user namespaces are disabled') }
  return (probed = { ok: true, why: '' })
}

type TapLike = Parameters<typeof requireFeature>[0]
export function needRuntime (t: TapLike): boolean {
  const p = runtimeAvailable()
  return requireFeature(t, 'the container runtime', p.ok, p.why)
}

export function fstab (text: string): MountOp[] {
  return parseFstab(text, 'test.fstab').map(e => e.op)
}

/** enroot's 10-system.fstab essentials: the host /proc and /dev, recursively bound. */
export const SYSTEM_MOUNTS = fstab('/proc /proc none x-create=dir,rbind,nosuid,nodev,noexec\n/dev /dev none x-create=dir,rbind,nosuid\n')

export function makePlan (base: string, rootfs: string, command: string[], over: Partial<ContainerPlan> = {}): ContainerPlan {
  return {
    rootfs: { kind: 'dir', path: rootfs },
    writable: false,
    remapRoot: false,
    privileged: false,
    unshare: { pid: false, net: false, ipc: false, uts: false },
    runtimeDir: join(base, 'run', 'c'),
    earlyMounts: SYSTEM_MOUNTS,
    hooks: [],
    lateMounts: [],
    environ: ['PATH=/bin:/usr/bin'],
    hookEnv: { PATH: '/usr/local/bin:/usr/bin:/bin' },
    login: false,
    command,
    ...over
  }
}

let seq = 0
export function writePlan (base: string, plan: ContainerPlan): string {
  const file = join(base, `plan-${process.pid}-${seq++}.json`)
  writeFileSync(file, JSON.stringify(plan))
  return file
}

// `env -u NODE_OPTIONS`: tap's process tracking would otherwise load into the driver, which runs as
// the test user and cannot write tap's .tap/processinfo.
const NODE = ['-u', 'NODE_OPTIONS', process.execPath]

export async function runPlan (base: string, plan: ContainerPlan): Promise<RunResult> {
  return await runAsUser('/usr/bin/env', [...NODE, DRIVER, writePlan(base, plan)], { env: { PATH: '/usr/bin:/bin' } })
}

export async function runExec (pid: number, command: string[]): Promise<RunResult> {
  return await runAsUser('/usr/bin/env', [...NODE, DRIVER, 'exec', String(pid), ...command], { env: { PATH: '/usr/bin:/bin' } })
}

/** Start without waiting (signal tests); output accumulates in `out`. */
export function spawnPlan (base: string, plan: ContainerPlan): { child: ChildProcess, out: { text: string, err: string } } {
  const u = IS_ROOT ? testUser() : undefined
  const child = spawn('/usr/bin/env', [...NODE, DRIVER, writePlan(base, plan)], {
    env: { PATH: '/usr/bin:/bin' }, stdio: ['ignore', 'pipe', 'pipe'], ...(u !== undefined ? { uid: u.uid, gid: u.gid } : {})
  })
  const out = { text: '', err: '' }
  child.stdout?.on('data', (d: Buffer) => { out.text += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { out.err += d.toString() })
  return { child, out }
}

export async function exitOf (child: ChildProcess): Promise<{ code: number | null, signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return { code: child.exitCode, signal: child.signalCode }
  return await new Promise(resolve => child.on('close', (code, signal) => resolve({ code, signal })))
}

export { until } from '../helpers/procs.js'

/** Processes of the test user whose command line contains marker (stray-process checks). */
export function userProcesses (marker: string): string[] {
  const uid = IS_ROOT ? testUser().uid : process.getuid?.()
  try {
    return execFileSync('ps', ['-u', String(uid), '-o', 'pid=,args='], { encoding: 'utf8' }).split('\n').filter(l => l.includes(marker))
  } catch { return [] }
}
