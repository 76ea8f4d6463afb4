// `enroot digest [-a|--arch ARCH] URI` (spec §2.3): prints the digest of the per-architecture manifest.
import type { Command } from './types.js'
import { UsageError, invalidArgument } from '../util/errors.js'
import { str } from '../util/args.js'

export const usage = `Usage: enroot digest [options] [--] URI

Retrieve the digest of a container image from a registry.

 Options:
   -a, --arch   Architecture of the image (defaults to host architecture)

 Schemes:
   docker://[USER@][REGISTRY#]IMAGE[:TAG|@DIGEST]
`

export const command: Command = {
  usage,
  options: [{ name: 'arch', long: 'arch', short: 'a', value: true }],
  async run (args, cfg) {
    const uri = args.rest[0]
    if (uri === undefined) throw new UsageError('Missing argument: URI', usage)
    if (args.rest.length > 1) throw new UsageError(`Unexpected argument: ${args.rest[1] ?? ''}`, usage)
    if (!uri.startsWith('docker://')) throw invalidArgument(uri)
    // loaded here so that other commands never pay for undici
    const { parseImageUri } = await import('../image/uri.js')
    const { hostArch, parseArch } = await import('../image/platform.js')
    const { RegistryClient } = await import('../image/registry.js')
    const arch = str(args, 'arch') ?? hostArch()
    parseArch(arch)
    const { readCredentialsText } = await import('../image/credentials.js')
    const ref = parseImageUri(uri, { credentialsText: readCredentialsText(cfg.get('ENROOT_CONFIG_PATH') ?? '') })
    const client = RegistryClient.fromConfig(ref, cfg)
    try {
      process.stdout.write(`${await client.headDigest(arch)}\n`)
    } finally {
      await client.close()
    }
    return 0
  }
}
