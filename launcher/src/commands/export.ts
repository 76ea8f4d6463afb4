import { spawnSync } from 'node:child_process'
import { writeFileSync, rmSync, mkdtempSync, lstatSync } from 'node:fs'
import { join, resolve } from 'node:path'
import type { Command } from './types.js'
import { EnrootError, fileExists, fromSystemError } from '../util/errors.js'
import { str, bool, oneOperand } from '../util/args.js'
import { log } from '../util/log.js'
import { requireContainer, exportExcludes } from '../runtime/rootfs-store.js'

const usage = `Usage: enroot export [options] [--] NAME

Create a container image from a container root filesystem.

 Options:
   -o, --output  Name of the output image file (defaults to "NAME.sqsh")
   -f, --force   Overwrite an existing container image
`

export const command: Command = {
  usage,
  options: [
    { name: 'output', long: 'output', short: 'o', value: true },
    { name: 'force', long: 'force', short: 'f' }
  ],
  async run (args, cfg) {
    const name = oneOperand(args, 'NAME', usage)
    const rootfs = requireContainer(cfg, name)
    const output = resolve(str(args, 'output') ?? `${name}.sqsh`)
    const existing = lstatSync(output, { throwIfNoEntry: false })
    if (existing !== undefined) {
      if (!bool(args, 'force') && !cfg.flag('ENROOT_FORCE_OVERRIDE')) throw fileExists(output)
      // not recursive (enroot commit 2bd5143): --force never deletes a directory
      if (existing.isDirectory()) throw fileExists(output, '--force does not remove directories')
      try { rmSync(output, { force: true }) } catch (err) { throw fromSystemError(err, output) }
    }

    // Mount-point placeholders, /dev contents and the runtime's own files are not part of the image.
    const scratch = mkdtempSync(join(cfg.get('ENROOT_TEMP_PATH') ?? '/tmp', 'enroot-export.'))
    try {
      const excludes = join(scratch, 'excludes')
      writeFileSync(excludes, exportExcludes(rootfs).map(e => `${e}\n`).join(''))
      const procs = cfg.int('ENROOT_MAX_PROCESSORS')
      const argv = [rootfs, output, '-all-root', ...(log.isTTY ? [] : ['-no-progress']),
        ...(procs > 0 ? ['-processors', String(procs)] : []),
        ...(cfg.get('ENROOT_SQUASH_OPTIONS') ?? '').split(/\s+/).filter(Boolean), '-ef', excludes]
      log.info('Creating squashfs filesystem...')
      log.debug(`mksquashfs ${argv.join(' ')}`)
      const r = spawnSync('mksquashfs', argv, { stdio: ['ignore', 2, 2] })
      if (r.status !== 0) {
        rmSync(output, { force: true })
        throw new EnrootError('IMAGE', `Failed to create squashfs filesystem: ${output}`, { cause: r.error })
      }
    } finally {
      rmSync(scratch, { recursive: true, force: true })
    }
    return 0
  }
}
