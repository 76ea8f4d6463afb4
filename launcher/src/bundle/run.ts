// `enroot bundle-run` (hidden): what a .run starts once it has extracted itself, with the launcher and the
// Node runtime it carries. It is `start` on the extracted tree, with the configuration taken from the bundle
// only: enroot.conf and enroot.conf.d are looked for in /.enroot/etc/system, which has none, so the host's
// never apply (enroot's rule); the .run has already sourced /.enroot/etc/config (--all) and pointed the
// ENROOT_*_PATH settings into the tree and its run directory. The .run removes the temporary tree itself.
import { basename, dirname, join } from 'node:path'
import type { Command } from '../commands/types.js'
import { START_OPTIONS, startOptions, startPlan } from '../commands/start.js'
import { loadConfig } from '../config/load.js'
import { UsageError } from '../util/errors.js'
import { str } from '../util/args.js'
import { log } from '../util/log.js'

const usage = `Usage: enroot bundle-run --rootfs DIR [options] [--] [COMMAND] [ARG...]

Start the container of an extracted bundle (run by the bundle itself).
`

/** The start options a bundle accepts: no --pid/--net/--ipc/--uts (ENROOT_UNSHARE_* still apply). */
const BUNDLE_START_OPTIONS = START_OPTIONS.filter(o => ['conf', 'env', 'rc', 'root', 'rw', 'mount'].includes(o.name))

export const command: Command = {
  usage,
  noConfig: true,
  options: [{ name: 'rootfs', long: 'rootfs', value: true }, ...BUNDLE_START_OPTIONS],
  async run (args) {
    const rootfs = str(args, 'rootfs')
    if (rootfs === undefined) throw new UsageError('Missing option: --rootfs', usage)
    const cfg = loadConfig({ sysconfdir: join(rootfs, '.enroot', 'etc', 'system') }).with({ ENROOT_DATA_PATH: dirname(rootfs) })
    log.setDebug(cfg.flag('ENROOT_DEBUG'))
    // the tree is a container named after its directory, in ENROOT_DATA_PATH: its parent
    return await startPlan(startOptions(args, basename(rootfs), args.rest), cfg)
  }
}
