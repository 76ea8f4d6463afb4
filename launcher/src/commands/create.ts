import { spawnSync } from 'node:child_process'
import { statSync } from 'node:fs'
import { existingFile, makeDirs } from '../util/fs.js'
import type { Command } from './types.js'
import { EnrootError, fileExists } from '../util/errors.js'
import { str, bool, oneOperand } from '../util/args.js'
import { log } from '../util/log.js'
import { defaultName } from '../runtime/names.js'
import { containerPath, dataPath, fixPerms, removeTree } from '../runtime/rootfs-store.js'

const usage = `Usage: enroot create [options] [--] IMAGE

Create a container root filesystem from a container image.

 Options:
   -n, --name   Name of the container (defaults to "IMAGE" without its .sqsh suffix)
   -f, --force  Overwrite an existing root filesystem
`

export const command: Command = {
  usage,
  options: [
    { name: 'name', long: 'name', short: 'n', value: true },
    { name: 'force', long: 'force', short: 'f' }
  ],
  async run (args, cfg) {
    const image = existingFile(oneOperand(args, 'IMAGE', usage))
    if (spawnSync('unsquashfs', ['-s', image], { stdio: 'ignore' }).status !== 0) throw new EnrootError('IMAGE', `Invalid image format: ${image}`)
    const rootfs = containerPath(cfg, str(args, 'name') ?? defaultName(image))
    if (statSync(rootfs, { throwIfNoEntry: false }) !== undefined) {
      if (!bool(args, 'force') && !cfg.flag('ENROOT_FORCE_OVERRIDE')) throw fileExists(rootfs)
      removeTree(rootfs)
    }

    // enroot creates its directories at every invocation (umask 077); the data path is the one create needs.
    makeDirs(dataPath(cfg), 0o700)
    log.info('Extracting squashfs filesystem...')
    const procs = cfg.int('ENROOT_MAX_PROCESSORS')
    // -user-xattrs keeps only user.* xattrs: an unprivileged user cannot set the others anyway.
    const argv = [...(log.isTTY ? [] : ['-no-progress']), ...(procs > 0 ? ['-processors', String(procs)] : []), '-user-xattrs', '-d', rootfs, image]
    log.debug(`unsquashfs ${argv.join(' ')}`)
    // unsquashfs's chatter goes to stderr: stdout is for command output only.
    const r = spawnSync('unsquashfs', argv, { stdio: ['ignore', 2, 2] })
    if (r.status !== 0) {
      // A half-extracted rootfs would later start as if it were complete.
      removeTree(rootfs)
      throw new EnrootError('IMAGE', `Failed to extract squashfs filesystem: ${image}`, { cause: r.error })
    }
    fixPerms(rootfs)
    return 0
  }
}
