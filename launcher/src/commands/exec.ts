import type { Command } from './types.js'
import { UsageError, EnrootError, invalidArgument } from '../util/errors.js'
import { list } from '../util/args.js'
import { cliEnv, validateEnvArgs } from '../pipeline/envfile.js'
import { signalable } from '../util/process.js'

const usage = `Usage: enroot exec [options] [--] PID COMMAND [ARG...]

Execute a command inside an existing container.

 Options:
   -e, --env KEY[=VAL]  Export an environment variable inside the container
`

export const command: Command = {
  usage,
  options: [{ name: 'env', long: 'env', short: 'e', value: true, repeat: true }],
  async run (args, cfg) {
    const [pidArg, ...cmd] = args.rest
    if (pidArg === undefined || cmd.length === 0) throw new UsageError(pidArg === undefined ? 'Missing argument: PID' : 'Missing argument: COMMAND', usage)
    validateEnvArgs(list(args, 'env'))
    if (!/^[1-9][0-9]*$/.test(pidArg) || Number(pidArg) > 2147483647) throw invalidArgument(pidArg)
    const pid = Number(pidArg)
    if (!signalable(pid)) throw new EnrootError('NOT_FOUND', `Process not found: ${pidArg}`)
    // The engine joins the namespaces; the environment is the process's initial one plus these (later wins).
    const { execInContainer } = await import('../runtime/engine.js')
    return (await execInContainer(pid, cmd, { env: cliEnv(list(args, 'env'), cfg.env) })).status
  }
}
