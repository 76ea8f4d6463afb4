import type { Command } from './types.js'
import { UsageError } from '../util/errors.js'
import { IMPLEMENTATION } from '../config/install-paths.js'

const usage = 'Usage: enroot info\n\nPrint information about the enroot installation and its effective configuration.\n'

export const command: Command = {
  usage,
  options: [],
  async run (args, cfg) {
    if (args.rest.length > 0) throw new UsageError(`Unexpected argument: ${args.rest[0] ?? ''}`, usage)
    let out = `Enroot version: ${cfg.version} (${IMPLEMENTATION})\nConfig file: ${cfg.configFile}\n\nEnvironment variables:\n`
    for (const [k, v] of cfg.exported()) out += `  ${k}=${v}\n`
    process.stdout.write(out)
    return 0
  }
}
