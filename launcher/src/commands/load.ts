// `enroot load [-a|--arch ARCH] [-n|--name NAME] [-f|--force] URI` (spec §2.5): adapts argv, draws
// progress on a TTY, and leaves the work to image/load.ts (loaded lazily: it pulls in the registry client).
import type { Command } from './types.js'
import { UsageError } from '../util/errors.js'
import { str, bool } from '../util/args.js'
import { log } from '../util/log.js'

export const usage = `Usage: enroot load [options] [--] URI

Load a container image from a registry straight into a container root filesystem.

 Options:
   -a, --arch   Architecture of the image (defaults to host architecture)
   -n, --name   Name of the container (defaults to "URI" as import names it, without .sqsh)
   -f, --force  Overwrite an existing root filesystem

 Schemes:
   docker://[USER@][REGISTRY#]IMAGE[:TAG|@DIGEST]
`

export const command: Command = {
  usage,
  options: [
    { name: 'arch', long: 'arch', short: 'a', value: true },
    { name: 'name', long: 'name', short: 'n', value: true },
    { name: 'force', long: 'force', short: 'f' }
  ],
  async run (args, cfg) {
    const uri = args.rest[0]
    if (uri === undefined) throw new UsageError('Missing argument: URI', usage)
    if (args.rest.length > 1) throw new UsageError(`Unexpected argument: ${args.rest[1] ?? ''}`, usage)
    const { loadImage } = await import('../image/load.js')
    const line = log.isTTY ? (await import('../image/import-progress.js')).progressLine(process.stderr) : undefined
    const arch = str(args, 'arch')
    const name = str(args, 'name')
    try {
      const r = await loadImage(cfg, {
        uri,
        force: bool(args, 'force') || cfg.flag('ENROOT_FORCE_OVERRIDE'),
        ...(arch !== undefined ? { arch } : {}),
        ...(name !== undefined ? { name } : {}),
        ...(line !== undefined ? { onProgress: line.onEvent } : {})
      })
      line?.finish()
      log.info(`Root filesystem written to ${r.rootfs}`)
    } finally {
      line?.finish()
    }
    return 0
  }
}
