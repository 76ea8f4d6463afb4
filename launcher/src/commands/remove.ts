import { readSync } from 'node:fs'
import type { Command } from './types.js'
import { UsageError } from '../util/errors.js'
import { bool } from '../util/args.js'
import { requireContainer, removeTree } from '../runtime/rootfs-store.js'

const usage = `Usage: enroot remove [options] [--] NAME...

Delete one or multiple container root filesystems.

 Options:
   -f, --force  Do not prompt for confirmation
`

/** One line from stdin, byte by byte so the next name's answer stays unread (bash's `read`). */
function readLine (): string {
  const buf = Buffer.alloc(1)
  let line = ''
  for (;;) {
    let n = 0
    try { n = readSync(0, buf, 0, 1, null) } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') continue
      return line
    }
    if (n === 0 || buf[0] === 0x0a) return line
    line += String.fromCharCode(buf[0] as number)
  }
}

export const command: Command = {
  usage,
  options: [{ name: 'force', long: 'force', short: 'f' }],
  async run (args, cfg) {
    if (args.rest.length === 0) throw new UsageError('Missing argument: NAME', usage)
    const force = bool(args, 'force') || cfg.flag('ENROOT_FORCE_OVERRIDE')
    for (const name of args.rest) {
      const rootfs = requireContainer(cfg, name)
      if (!force) {
        // Like bash's `read -p`: the question is shown only on a terminal, the answer is read either way.
        if (process.stdin.isTTY === true) process.stderr.write(`Do you really want to delete ${rootfs}? [y/N] `)
        const answer = readLine()
        if (answer !== 'y' && answer !== 'Y') continue
      }
      // No check for running containers, as enroot: their mounts live in other namespaces.
      removeTree(rootfs)
    }
    return 0
  }
}
