// The per-node launcher, run by spank_enroot.so as the job user (doc/slurm.md). Like pyxis, it drives
// the enroot CLI (this same program) as subprocesses: list, import, create, start, export, remove.
//   slurm-launch:   import/create as needed, `enroot start` the container ONCE with a command that
//                   stops itself (`sh -c 'kill -STOP $$'`), answer "READY <pid>" on the status fd, exit;
//   slurm-teardown: after the step's last local task: --container-save export, remove unnamed containers;
//   slurm-epilog:   container_scope=job: remove this job's containers on the node.
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process'
import { closeSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { userInfo } from 'node:os'
import type { Command } from '../commands/types.js'
import { EnrootError } from '../util/errors.js'
import { log } from '../util/log.js'
import {
  STEP_OPTIONS, containerName, errorLine, imageSource, isJobContainer, parseFancyList, parseStepRequest, readyLine, savePath,
  startConfig, type StepRequest
} from './protocol.js'

const usage = 'Usage: enroot slurm-launch|slurm-teardown|slurm-epilog [options] (internal: run by spank_enroot.so)\n'
const STOP_COMMAND = ['sh', '-c', 'kill -STOP $$ ; exit 0']
const START_TIMEOUT_MS = 10 * 60_000

const say = (msg: string): void => { process.stderr.write(`pyxis: ${msg}\n`) }

/** This program again, as a subprocess; its output joins ours (the shim's log memfd). */
function enroot (args: string[], opts: { quiet?: boolean } = {}): SpawnSyncReturns<string> {
  log.debug(`running enroot command: "enroot ${args.join(' ')}"`)
  return spawnSync(process.execPath, [process.argv[1] as string, ...args], {
    encoding: 'utf8',
    stdio: ['ignore', opts.quiet === true ? 'pipe' : 'inherit', 'inherit']
  })
}

function runtimeDir (r: StepRequest): string {
  const dir = join(r.runtimePath, String(process.getuid?.() ?? 0))
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  return dir
}

/** name → running pid (undefined: exists, stopped); absent: does not exist. */
function containers (): Map<string, number | undefined> {
  const res = enroot(['list', '-f'], { quiet: true })
  if (res.status !== 0) throw new EnrootError('SYSCALL', 'couldn\'t get list of containers')
  return parseFancyList(res.stdout)
}

/** Makes the container filesystem unless a named one is reused; returns the running pid to join, if any. */
function prepare (r: StepRequest, name: string, created: { done: boolean }): number | undefined {
  if (r.name !== undefined) {
    const all = containers()
    const exists = all.has(name)
    let running = all.get(name)
    if (r.name.flag === 'create' && exists) throw new EnrootError('EXISTS', 'error: "create" flag was passed to --container-name but the container already exists')
    if (r.name.flag === 'exec' && running === undefined) throw new EnrootError('INVALID', 'error: "exec" flag was passed to --container-name but the container is not running')
    if (r.name.flag === 'no_exec') running = undefined
    if (running !== undefined) { say('reusing existing container namespaces'); return running }
    if (exists) { say('reusing existing container filesystem'); return undefined }
    if (r.image === undefined) throw new EnrootError('NOT_FOUND', `error: a container with name "${name}" does not exist, and --container-image is not set`)
  }
  if (r.image === undefined) throw new EnrootError('USAGE', 'slurm protocol: --image or --name is required')
  const image = r.image
  const src = imageSource(image, r.cwd)
  let squashfs: string
  let temporary = false
  if (src.kind === 'registry') {
    squashfs = join(runtimeDir(r), `${r.job}.${r.step}.squashfs`)
    if (r.totalTasks <= 1) say(`importing docker image: ${image}`)
    rmSync(squashfs, { force: true })
    if (enroot(['import', '--output', squashfs, src.uri]).status !== 0) throw new EnrootError('IMAGE', `failed to import docker image: ${image}`)
    say(`imported docker image: ${image}`)
    temporary = true
  } else {
    squashfs = src.path
  }
  try {
    say(`creating container filesystem: ${name}`)
    if (enroot(['create', '--name', name, squashfs]).status !== 0) throw new EnrootError('IMAGE', `failed to create container filesystem for image: ${image}`)
    created.done = true
  } finally {
    if (temporary) rmSync(squashfs, { force: true })
  }
  return undefined
}

function procStat (pid: number): { state: string, ppid: number } | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ')
    return { state: f[0] as string, ppid: Number(f[1]) }
  } catch { return undefined }
}

/** The stopped process among root's descendants: the container's `sh -c 'kill -STOP $$'`. */
function stoppedDescendant (root: number): number | undefined {
  const children = new Map<number, number[]>()
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    const st = procStat(Number(d))
    if (st !== undefined) children.set(st.ppid, [...(children.get(st.ppid) ?? []), Number(d)])
  }
  const queue = [...(children.get(root) ?? [])]
  for (let pid = queue.shift(); pid !== undefined; pid = queue.shift()) {
    if (procStat(pid)?.state === 'T') return pid
    queue.push(...(children.get(pid) ?? []))
  }
  return undefined
}

/** `enroot start --conf F NAME sh -c 'kill -STOP $$'`, detached; resolves with the stopped container pid. */
async function start (r: StepRequest, name: string): Promise<number> {
  const conf = join(runtimeDir(r), `${r.job}.${r.step}.conf`)
  writeFileSync(conf, startConfig(r, process.env), { mode: 0o600 })
  say(`starting container: ${name}`)
  const child = spawn(process.execPath, [process.argv[1] as string, 'start', '--conf', conf, name, ...STOP_COMMAND], {
    detached: true, stdio: ['ignore', 'inherit', 'inherit']
  })
  const hint = r.entrypoint ? '\n        if the image has an unusual entrypoint, try using --no-container-entrypoint' : ''
  try {
    return await new Promise<number>((resolve, reject) => {
      const deadline = Date.now() + START_TIMEOUT_MS
      const timer = setInterval(() => {
        const pid = child.pid === undefined ? undefined : stoppedDescendant(child.pid)
        if (pid !== undefined) { clearInterval(timer); resolve(pid) } else if (Date.now() > deadline) {
          clearInterval(timer)
          child.kill('SIGKILL')
          reject(new EnrootError('INTERRUPTED', 'container start timed out'))
        }
      }, 20)
      child.once('exit', (code, signal) => {
        clearInterval(timer)
        if (code === 0) reject(new EnrootError('SYSCALL', `container exited too soon${hint}`))
        else reject(new EnrootError('SYSCALL', signal !== null ? `container start terminated with signal ${signal}${hint}` : `container start failed with error code: ${code ?? 1}${hint}`))
      })
      child.once('error', (e) => { clearInterval(timer); reject(e) })
    })
  } finally {
    child.removeAllListeners('exit')
    child.unref()
    rmSync(conf, { force: true })
  }
}

function status (r: StepRequest, line: string): void {
  if (r.statusFd === undefined) { process.stdout.write(line); return }
  writeSync(r.statusFd, line)
  closeSync(r.statusFd)
}

const launch: Command = {
  usage,
  options: STEP_OPTIONS,
  noConfig: true,
  async run (args) {
    const r = parseStepRequest(args)
    const name = containerName(r)
    const created = { done: false }
    try {
      const began = Date.now()
      const running = prepare(r, name, created)
      if (running !== undefined) {
        if (r.mounts.length > 0) say('ignoring --container-mounts when attaching to a running container')
        status(r, readyLine(running, true))
        return 0
      }
      const pid = await start(r, name)
      say(`completed container setup in ${Date.now() - began} ms`)
      status(r, readyLine(pid, false))
      return 0
    } catch (err) {
      status(r, errorLine(err instanceof Error ? err.message : String(err)))
      // A filesystem made for this step only must not outlive its failed start (named ones are kept, as pyxis).
      if (created.done && r.name === undefined) enroot(['remove', '-f', name], { quiet: true })
      throw err
    }
  }
}

const teardown: Command = {
  usage,
  options: STEP_OPTIONS,
  noConfig: true,
  async run (args) {
    const r = parseStepRequest(args)
    const name = containerName(r)
    let failed = false
    if (r.save !== undefined && r.allStarted) {
      const out = savePath(r.save, r.cwd)
      if (enroot(['export', '-f', '-o', out, name]).status === 0) say(`exported container ${name} to ${out}`)
      else { say(`failed to export container ${name} to ${out}`); failed = true }
    }
    if (r.name === undefined) {
      say(`removing container filesystem: ${name}`)
      // The container's start process may still be unwinding after the shim's SIGKILL: retry briefly.
      let ok = false
      for (let i = 0; i < 10 && !ok; i++) {
        ok = enroot(['remove', '-f', name], { quiet: true }).status === 0
        if (!ok) await new Promise(resolve => setTimeout(resolve, 100))
      }
      if (!ok) { say(`failed to remove container filesystem: ${name}`); failed = true }
    }
    return failed ? 1 : 0
  }
}

const epilog: Command = {
  usage,
  options: STEP_OPTIONS,
  noConfig: true,
  async run (args) {
    // The epilog runs without the job's environment (pyxis#123): at least give enroot the user's HOME.
    if (process.env.HOME === undefined) process.env.HOME = userInfo().homedir
    const job = Number(args.opts.job)
    if (typeof args.opts.job !== 'string' || !Number.isInteger(job)) throw new EnrootError('USAGE', 'slurm protocol: missing --job-id')
    const victims = [...containers().keys()].filter(n => isJobContainer(n, job))
    let failed = false
    for (const n of victims) {
      if (enroot(['remove', '-f', n]).status !== 0) { say(`epilog: failed to remove container ${n}`); failed = true }
    }
    if (failed) {
      for (const n of containers().keys()) if (isJobContainer(n, job)) say(`epilog: container ${n} was not removed`)
    }
    return failed ? 1 : 0
  }
}

export const commands: Record<'slurm-launch' | 'slurm-teardown' | 'slurm-epilog', Command> = {
  'slurm-launch': launch,
  'slurm-teardown': teardown,
  'slurm-epilog': epilog
}
