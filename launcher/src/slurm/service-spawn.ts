// Starting a job's launcher service (service.ts) from the first step's launcher on a node.
import { existsSync, readFileSync } from 'node:fs'
import { connect } from 'node:net'
import { childProcess } from '../util/builtins.js'

/** Is a live service answering at `path`? */
export async function answers (path: string): Promise<boolean> {
  return await new Promise(resolve => {
    const s = connect(path)
    s.on('connect', () => { s.destroy(); resolve(true) })
    s.on('error', () => { resolve(false) })
  })
}

/**
 * Whether Slurm tracks this process by cgroup (proctrack/cgroup, task/cgroup): the service would then sit
 * in the first step's cgroup, be killed when that step ends, and take with it the containers of the later
 * steps it started (and charge them to the wrong step). There, every step keeps its own launcher.
 */
export function inSlurmCgroup (text: string): boolean {
  return text.split('\n').some(line => /(^|\/)(slurm[^/]*|job_\d+|step_[^/]+)(\/|$)/.test(line.slice(line.indexOf(':', line.indexOf(':') + 1) + 1)))
}

/**
 * Starts the service in a session of its own whose parent exits at once (`setsid -f`): it must outlive
 * this step, so it must not be among the processes Slurm ends with it. Best effort: without it, later
 * steps simply run their own launcher. Resolves once the service listens (or gave up): the launcher waits
 * for that before it exits, so that the job's epilog, which runs after this step, finds it to end it.
 */
export async function spawnService (socket: string, idleSeconds: number): Promise<void> {
  if (idleSeconds <= 0) return
  let cgroup = ''
  try { cgroup = readFileSync('/proc/self/cgroup', 'utf8') } catch {}
  if (inSlurmCgroup(cgroup)) return
  // One is there already (this step ran its own launcher because the service was busy): nothing to start.
  if (existsSync(socket) && await answers(socket)) return
  const script = process.argv[1]
  if (script === undefined) return
  const child = childProcess().spawn('setsid', ['-f', process.execPath, script, 'slurm-service', `--socket=${socket}`, `--idle=${idleSeconds}`, '--ready-fd=3'],
    { stdio: ['ignore', 'ignore', 'ignore', 'pipe'], cwd: '/' })
  child.on('error', () => {})
  child.unref()
  const ready = child.stdio[3]
  if (ready === null || ready === undefined) return
  // The service closes its end once it listens; its end closes anyway when it exits.
  await new Promise<void>(resolve => {
    const timer = setTimeout(resolve, READY_TIMEOUT_MS)
    const done = (): void => { clearTimeout(timer); resolve() }
    ready.on('close', done)
    ready.on('error', done)
    if ('resume' in ready) ready.resume()
  })
  ;(ready as { unref?: () => void }).unref?.()
}

/** A service that takes longer to listen is left to its idle time. */
const READY_TIMEOUT_MS = 5000
