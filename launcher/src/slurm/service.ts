// `enroot slurm-service`: a job's launcher service on one node (doc/slurm.md, "The launcher service").
// A job's steps 0 and 1 on a node run `enroot slurm-launch` as a process of their own, and step 1's then
// starts this service (a job that srun made for one step never needs one); the job's later steps on that
// node hand their slurm-launch to it over a unix socket in the user's runtime directory, so that they do
// not pay for a Node start-up and for loading the launcher (most of a warm step's CPU). It runs as the job
// user, like the launcher it replaces, and ends when its job does (the shim's epilog asks it to) or after
// --idle seconds without a container or a request.
//
// One request is prepared at a time (it sets the process environment to its own, and its log lines go to
// its own client); one that arrives meanwhile is declined and runs its own launcher. The containers are
// then supervised side by side.
import { createServer, type Server, type Socket } from 'node:net'
import { closeSync, renameSync, rmSync, statSync } from 'node:fs'
import { dirname } from 'node:path'
import type { Command } from '../commands/types.js'
import { parseArgs, str, type Parsed } from '../util/args.js'
import { EnrootError } from '../util/errors.js'
import { log } from '../util/log.js'
import { report } from '../cli.js'
import { STEP_OPTIONS } from './protocol.js'
import { parseServiceRequest, replyLines, requestEnv, type ServiceRequest } from './service-protocol.js'
import { launchStep, step, type LaunchedStep } from './launch.js'
import { answers } from './service-spawn.js'
import { LowerHolders } from './lower-holders.js'

const usage = 'Usage: enroot slurm-service --socket=PATH [--idle=SECONDS] [--ready-fd=FD] (internal: started by slurm-launch)\n'
/** How long a quit waits for the containers to end and their clean-up to finish. */
const QUIT_WAIT_MS = 10_000

/** Sets the process environment to `env` in place (the native helper and spawned tools read the real one). */
function setEnv (env: Record<string, string>): void {
  for (const k of Object.keys(process.env)) if (!Object.hasOwn(env, k)) Reflect.deleteProperty(process.env, k)
  Object.assign(process.env, env)
}

/** Routes this process's stderr (log.*, the launcher's "pyxis:" lines, report()) to one client; returns the undo. */
function stderrTo (conn: Socket): () => void {
  const stderr = process.stderr
  const write = stderr.write
  stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]): boolean => {
    if (!conn.destroyed) conn.write(replyLines('L', typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString()))
    const cb = rest.find(x => typeof x === 'function') as (() => void) | undefined
    cb?.()
    return true
  }) as typeof stderr.write
  return () => { stderr.write = write }
}

class Service {
  private readonly running = new Set<LaunchedStep>()
  /** the request being prepared: one at a time */
  private preparing: Promise<void> | undefined
  private active = 0
  private idleTimer: NodeJS.Timeout | undefined
  private quitting = false
  private readonly serviceEnv: Record<string, string | undefined> = { ...process.env }
  private readonly holders: LowerHolders

  constructor (private readonly server: Server, private readonly path: string, private readonly ino: number,
    private readonly idleMs: number, private readonly done: () => void) {
    this.holders = new LowerHolders(dirname(path))
    server.on('connection', conn => { this.accept(conn) })
    this.armIdle()
  }

  private armIdle (): void {
    clearTimeout(this.idleTimer)
    if (this.active === 0) this.idleTimer = setTimeout(() => { void this.quit() }, this.idleMs)
  }

  private accept (conn: Socket): void {
    let buf = Buffer.alloc(0)
    let taken = false
    conn.on('error', () => {})
    conn.on('data', (chunk: Buffer) => {
      if (taken) return
      buf = Buffer.concat([buf, chunk])
      let req: ServiceRequest | undefined
      try { req = parseServiceRequest(buf) } catch { conn.destroy(); return }
      if (req === undefined) return
      taken = true
      if (req.kind === 'quit') { void this.quit().finally(() => conn.end()); return }
      // No "A": the client runs the launcher itself. Busy with another step's preparation (an import can
      // take minutes, and a request's environment is the whole process's while it prepares) or leaving.
      if (this.quitting || this.preparing !== undefined) { conn.destroy(); return }
      // Nor for arguments this service does not know (a shim or launcher upgraded during the job): the
      // launcher the client then runs knows them, or reports the error itself.
      let args: Parsed
      try {
        if (req.argv[0] !== 'slurm-launch') throw new Error('slurm-launch only')
        args = parseArgs(req.argv.slice(1), STEP_OPTIONS, usage)
      } catch { conn.destroy(); return }
      this.active++
      clearTimeout(this.idleTimer)
      conn.write(replyLines('A'))
      this.preparing = this.launch(conn, req, args).finally(() => { this.preparing = undefined; this.active--; this.armIdle() })
    })
  }

  /** One slurm-launch: as `enroot slurm-launch ARGS` would, with the request's environment and its own log. */
  private async launch (conn: Socket, req: ServiceRequest, args: Parsed): Promise<void> {
    let gone = conn.destroyed || conn.readableEnded
    let launched: LaunchedStep | undefined
    // The client closing its side means the shim killed it: nobody will join this container.
    const giveUp = (): void => { gone = true; launched?.stop() }
    conn.on('end', giveUp)
    conn.on('close', giveUp)
    if (gone) return
    let code = 0
    const restore = stderrTo(conn)
    try {
      setEnv(requestEnv(req.env, this.serviceEnv))
      const cfg = (await import('../config/load.js')).loadConfig()
      log.setDebug(cfg.flag('ENROOT_DEBUG'))
      const { r, cfg: stepCfg, name } = step(args, cfg)
      launched = await launchStep(r, stepCfg, name, line => { if (!conn.destroyed) conn.write(replyLines('S', line)) },
        async (image, uid, gid) => await this.holders.get(image, uid, gid))
    } catch (err) {
      code = report(err)
    } finally {
      restore()
    }
    if (launched === undefined) { conn.end(replyLines('X', String(code))); return }
    const it = launched
    this.running.add(it)
    this.active++
    if (gone) it.stop()
    void it.finished.then(() => {
      this.running.delete(it)
      conn.end(replyLines('X', '0'))
      this.active--
      this.armIdle()
    })
  }

  /** Stop taking requests, end the containers, wait for their clean-up (bounded), then exit. */
  async quit (): Promise<void> {
    if (this.quitting) return
    this.quitting = true
    clearTimeout(this.idleTimer)
    try { if (statSync(this.path).ino === this.ino) rmSync(this.path, { force: true }) } catch {}
    this.server.close()
    await this.preparing
    for (const it of this.running) it.stop()
    await Promise.race([
      Promise.all([...this.running].map(async it => { await it.finished })),
      new Promise(resolve => setTimeout(resolve, QUIT_WAIT_MS))
    ])
    await this.holders.stop()
    this.done()
  }
}

export const command: Command = {
  usage,
  options: [{ name: 'socket', long: 'socket', value: true }, { name: 'idle', long: 'idle', value: true }, { name: 'readyFd', long: 'ready-fd', value: true }],
  noConfig: true,
  async run (args) {
    const path = str(args, 'socket')
    const idle = Number(str(args, 'idle') ?? '60')
    if (path === undefined || !Number.isFinite(idle) || idle <= 0) throw new EnrootError('USAGE', 'slurm-service: --socket=PATH and a positive --idle are required')
    // The directory this was started in may be a job's: do not hold it.
    process.chdir('/')
    // The launcher that started us waits on this fd until we listen (or leave).
    const readyFd = str(args, 'readyFd')
    const ready = (): void => { if (readyFd !== undefined) try { closeSync(Number(readyFd)) } catch {} }
    let ino: number
    const server = createServer({ allowHalfOpen: true })
    try {
      if (await answers(path)) return 0
      // Listen under a name of our own and rename it into place: the socket appears ready or not at all.
      const tmp = `${path}.${process.pid}`
      rmSync(tmp, { force: true })
      await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(tmp, resolve) })
      renameSync(tmp, path)
      ino = statSync(path).ino
    } finally {
      ready()
    }
    return await new Promise<number>(resolve => {
      const service = new Service(server, path, ino, idle * 1000, () => { resolve(0) })
      // The shim's epilog asks politely; a SIGTERM (the node going down, a kill by hand) is the same.
      process.on('SIGTERM', () => { void service.quit() })
      process.on('SIGINT', () => { void service.quit() })
    })
  }
}
