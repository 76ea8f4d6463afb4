import type { Config } from '../config/load.js'
import type { OptionSpec } from '../util/args.js'

/** One module per enroot command, loaded lazily by cli.ts so that a command loads only what it uses. */
export interface Command {
  /** the text `--help` prints; doc/cmd/<name>.md carries the same Usage block (checked by a test) */
  usage: string
  options: readonly OptionSpec[]
  /** returns the exit status; throws EnrootError for failures */
  run: (args: import('../util/args.js').Parsed, cfg: Config) => Promise<number>
  /** commands like `version` need no configuration */
  noConfig?: boolean
}
