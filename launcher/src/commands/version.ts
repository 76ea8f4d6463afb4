import type { Command } from './types.js'
import { VERSION } from '../config/install-paths.js'

export const command: Command = {
  usage: 'Usage: enroot version\n\nPrint the version of enroot.\n',
  options: [],
  noConfig: true,
  async run () {
    process.stdout.write(`${VERSION}\n`)
    return 0
  }
}
