// `enroot import [-a|--arch ARCH] [-o|--output FILE] URI` (spec §2.4): adapts argv, draws progress on a
// TTY, and leaves the work to image/import.ts. No --force, as in enroot: an existing output is an error.
import type { Command } from './types.js'
import { UsageError } from '../util/errors.js'
import { str } from '../util/args.js'
import { log } from '../util/log.js'

export const usage = `Usage: enroot import [options] [--] URI

Import a container image from a specific location.

 Options:
   -a, --arch   Architecture of the image (defaults to host architecture)
   -o, --output Name of the output image file (defaults to "URI.sqsh")

 Schemes:
   docker://[USER@][REGISTRY#]IMAGE[:TAG|@DIGEST]  Import a Docker image from a registry
   dockerd://IMAGE[:TAG]                          Import a Docker image from the Docker daemon
   podman://IMAGE[:TAG]                           Import a Docker image from a local podman repository
`

export const command: Command = {
  usage,
  options: [
    { name: 'arch', long: 'arch', short: 'a', value: true },
    { name: 'output', long: 'output', short: 'o', value: true }
  ],
  async run (args, cfg) {
    const uri = args.rest[0]
    if (uri === undefined) throw new UsageError('Missing argument: URI', usage)
    if (args.rest.length > 1) throw new UsageError(`Unexpected argument: ${args.rest[1] ?? ''}`, usage)
    // Loaded here so that other commands never pay for the registry client.
    const { importImage, checkScheme } = await import('../image/import.js')
    checkScheme(uri)
    const line = log.isTTY ? (await import('../image/import-progress.js')).progressLine(process.stderr) : undefined
    const arch = str(args, 'arch')
    const output = str(args, 'output')
    try {
      const r = await importImage(cfg, {
        uri,
        cwd: process.cwd(),
        ...(arch !== undefined ? { arch } : {}),
        ...(output !== undefined ? { output } : {}),
        ...(line !== undefined ? { onProgress: line.onEvent } : {})
      })
      line?.finish()
      log.info(`Image written to ${r.output}`)
    } finally {
      line?.finish()
    }
    return 0
  }
}
