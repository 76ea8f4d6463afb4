// Node's built-in modules that only rare paths need, loaded when first used instead of at start-up.
// An `import` of node:child_process costs every `enroot start` about 3 ms (it brings in net, dgram and
// streams) for a spawn that happens only with a --conf script, a squashfs image or a bash-syntax config.
import type * as ChildProcess from 'node:child_process'
import type * as Os from 'node:os'
import type * as FsPromises from 'node:fs/promises'
import type * as Http from 'node:http'

export const childProcess = (): typeof ChildProcess => process.getBuiltinModule('node:child_process')
export const os = (): typeof Os => process.getBuiltinModule('node:os')
export const fsPromises = (): typeof FsPromises => process.getBuiltinModule('node:fs/promises')
/** The registry client's error messages only (reason phrases): node:http loads its client, server and agent. */
export const http = (): typeof Http => process.getBuiltinModule('node:http')
