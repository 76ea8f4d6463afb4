import type { Command } from './types.js'
import { UsageError, EnrootError } from '../util/errors.js'
import { loadDirectives } from '../config/load.js'
import { checkConfScript } from '../pipeline/conf-script.js'
import { startPlan } from './start.js'

const usage = `Usage: enroot batch [options] [--] CONFIG [COMMAND] [ARG...]

Shorthand version of "enroot start -c CONFIG" where the root filesystem is
taken from the configuration file using the special directive ENROOT_ROOTFS.
`

export const command: Command = {
  usage,
  options: [],
  async run (args, cfg) {
    const [conf, ...cmd] = args.rest
    if (conf === undefined) throw new UsageError('Missing argument: CONFIG', usage)
    const path = checkConfScript(conf)
    const rootfs = loadDirectives(cfg, path).get('ENROOT_ROOTFS') ?? ''
    if (rootfs === '') throw new EnrootError('CONFIG', `Missing directive ENROOT_ROOTFS in ${conf}`)
    // Exactly `start --conf CONFIG`: the directives are loaded again there, with the CLI flags after them.
    return await startPlan({ rootfs, conf, command: cmd, cwd: process.cwd(), uid: process.geteuid?.() ?? 0 }, cfg)
  }
}
