// The front controller: picks the command, loads only its module, and is the only place that exits.
import { EnrootError, ExitStatus, UsageError } from './util/errors.js'
import { log } from './util/log.js'
import { parseArgs } from './util/args.js'
import type { Command } from './commands/types.js'

type Loader = () => Promise<{ command: Command }>

const COMMANDS: Record<string, Loader> = {
  digest: async () => await import('./commands/digest.js'),
  import: async () => await import('./commands/import.js'),
  batch: async () => await import('./commands/batch.js'),
  bundle: async () => await import('./commands/bundle.js'),
  create: async () => await import('./commands/create.js'),
  exec: async () => await import('./commands/exec.js'),
  export: async () => await import('./commands/export.js'),
  list: async () => await import('./commands/list.js'),
  load: async () => await import('./commands/load.js'),
  remove: async () => await import('./commands/remove.js'),
  start: async () => await import('./commands/start.js'),
  info: async () => await import('./commands/info.js'),
  version: async () => await import('./commands/version.js'),
  // hidden: the per-node launcher spank_enroot.so runs (doc/slurm.md); not in GLOBAL_USAGE
  'slurm-import': async () => ({ command: (await import('./slurm/launch.js')).commands['slurm-import'] }),
  'slurm-launch': async () => ({ command: (await import('./slurm/launch.js')).commands['slurm-launch'] }),
  'slurm-teardown': async () => ({ command: (await import('./slurm/launch.js')).commands['slurm-teardown'] }),
  'slurm-epilog': async () => ({ command: (await import('./slurm/launch.js')).commands['slurm-epilog'] }),
  'slurm-service': async () => await import('./slurm/service.js'),
  // hidden: what a self-extracting bundle runs (doc/cmd/bundle.md); not in GLOBAL_USAGE
  'bundle-run': async () => await import('./bundle/run.js')
}

export const GLOBAL_USAGE = `Usage: enroot COMMAND [ARG...]

Command line utility for manipulating container sandboxes.

 Commands:
   batch  [options] [--] CONFIG [COMMAND] [ARG...]
   bundle [options] [--] IMAGE
   create [options] [--] IMAGE
   digest [options] [--] URI
   exec   [options] [--] PID COMMAND [ARG...]
   export [options] [--] NAME
   import [options] [--] URI
   info
   list   [options]
   load   [options] [--] URI
   remove [options] [--] NAME...
   start  [options] [--] NAME|IMAGE [COMMAND] [ARG...]
   version
`

async function main (argv: string[]): Promise<number> {
  const name = argv[0]
  if (name === undefined) { process.stdout.write(GLOBAL_USAGE); return 1 }
  if (name === 'help' || name === '-h' || name === '--help') { process.stdout.write(GLOBAL_USAGE); return 0 }
  const loader = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined
  if (loader === undefined) { process.stdout.write(GLOBAL_USAGE); return 1 }
  let mod: { command: Command }
  try {
    mod = await loader()
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' && String((err as Error).message).includes(`commands/${name}.js`)) {
      throw new EnrootError('UNSUPPORTED', `Command not implemented yet: ${name}`)
    }
    throw err
  }
  const cmd = mod.command
  const args = parseArgs(argv.slice(1), cmd.options, cmd.usage)
  if (args.help) { process.stdout.write(cmd.usage); return 0 }
  const cfg = cmd.noConfig === true ? undefined : (await import('./config/load.js')).loadConfig()
  if (cfg !== undefined) log.setDebug(cfg.flag('ENROOT_DEBUG'))
  return await cmd.run(args, cfg as NonNullable<typeof cfg>)
}

/** Turn any outcome into an exit status: 1 for expected failures, 70 for bugs, the container's own status passed through. */
export function report (err: unknown): number {
  if (err instanceof ExitStatus) return err.status
  if (err instanceof UsageError) {
    log.error(err.message)
    if (err.usage !== undefined) process.stdout.write(err.usage)
    return err.exitCode
  }
  if (err instanceof EnrootError) {
    log.error(err.message)
    if (err.hint !== undefined) process.stderr.write(`        ${err.hint}\n`)
    if (log.isDebug && err.cause !== undefined) process.stderr.write(`${String((err.cause as Error).stack ?? err.cause)}\n`)
    if (err.code === 'INTERNAL') process.stderr.write(`${err.stack ?? ''}\nThis is a bug; please report it with the output above.\n`)
    return err.exitCode
  }
  const e = err as Error
  log.error(`Internal error: ${e?.message ?? String(err)}`)
  process.stderr.write(`${e?.stack ?? ''}\nThis is a bug; please report it with the output above.\n`)
  return 70
}

/**
 * The one place that exits. process.exit once a command is done, not a natural exit: everything a command
 * starts is awaited by then, output to files, pipes and terminals is written synchronously on Linux, and
 * Node's teardown of a drained process (freeing the heap and the environment) costs every start a few
 * milliseconds of CPU for nothing.
 */
export function run (argv: string[]): void {
  main(argv).then(
    (status) => { process.exit(status) },
    (err: unknown) => { process.exit(report(err)) }
  )
}
