import type { Command } from './types.js'
import type { Config } from '../config/load.js'
import { UsageError } from '../util/errors.js'
import { str, bool, list, type Parsed } from '../util/args.js'
import { log } from '../util/log.js'
import { buildPlan, type StartOptions } from '../runtime/plan.js'

const usage = `Usage: enroot start [options] [--] NAME|IMAGE [COMMAND] [ARG...]

Start a container and invoke the command script within its root filesystem.
Command and arguments are passed to the script as input parameters.

In the absence of a command script and if a command was given, it will be executed directly.
Otherwise, an interactive shell will be started within the container.

 Options:
   -c, --conf CONFIG    Specify a configuration script to run before the container starts
   -e, --env KEY[=VAL]  Export an environment variable inside the container
       --rc SCRIPT      Override the command script inside the container
   -r, --root           Ask to be remapped to root inside the container
   -w, --rw             Make the container root filesystem writable
   -m, --mount FSTAB    Perform a mount from the host inside the container (colon-separated)
       --pid            Start the container in a new PID namespace
       --net            Start the container in a new network namespace
       --ipc            Start the container in a new IPC namespace
       --uts            Start the container in a new UTS namespace
`

export const START_OPTIONS = [
  { name: 'conf', long: 'conf', short: 'c', value: true },
  { name: 'env', long: 'env', short: 'e', value: true, repeat: true },
  { name: 'rc', long: 'rc', value: true },
  { name: 'root', long: 'root', short: 'r' },
  { name: 'rw', long: 'rw', short: 'w' },
  { name: 'mount', long: 'mount', short: 'm', value: true, repeat: true },
  { name: 'pid', long: 'pid' },
  { name: 'net', long: 'net' },
  { name: 'ipc', long: 'ipc' },
  { name: 'uts', long: 'uts' }
] as const

export function startOptions (args: Parsed, rootfs: string, command: string[]): StartOptions {
  const conf = str(args, 'conf')
  const rc = str(args, 'rc')
  return {
    rootfs,
    ...(conf === undefined ? {} : { conf }),
    ...(rc === undefined ? {} : { rc }),
    env: list(args, 'env'),
    mounts: list(args, 'mount'),
    root: bool(args, 'root'),
    rw: bool(args, 'rw'),
    pid: bool(args, 'pid'),
    net: bool(args, 'net'),
    ipc: bool(args, 'ipc'),
    uts: bool(args, 'uts'),
    command,
    cwd: process.cwd(),
    uid: process.geteuid?.() ?? 0
  }
}

export async function startPlan (opts: StartOptions, cfg: Config): Promise<number> {
  const { plan } = buildPlan(opts, cfg)
  if (log.isDebug) log.debug(`plan: ${JSON.stringify({ ...plan, hookEnv: undefined })}`)
  // The acting side is loaded only once the plan is valid; the engine owns the runtime directory.
  const [{ runContainer }, { engineBuiltinHook }] = await Promise.all([
    import('../runtime/engine.js'), import('../pipeline/builtin-hooks/apply.js')
  ])
  return (await runContainer(plan, { builtinHook: engineBuiltinHook })).status
}

export const command: Command = {
  usage,
  options: START_OPTIONS,
  async run (args, cfg) {
    const [rootfs, ...cmd] = args.rest
    if (rootfs === undefined) throw new UsageError('Missing argument: NAME|IMAGE', usage)
    return await startPlan(startOptions(args, rootfs, cmd), cfg)
  }
}
