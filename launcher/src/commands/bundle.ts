import { spawnSync } from 'node:child_process'
import { accessSync, constants, lstatSync, mkdtempSync, rmSync, statSync } from 'node:fs'
import { basename, delimiter, dirname, join } from 'node:path'
import type { Command } from './types.js'
import type { Config } from '../config/load.js'
import { EnrootError, fileExists, fromSystemError, noSuchFile } from '../util/errors.js'
import { str, bool, oneOperand } from '../util/args.js'
import { log } from '../util/log.js'
import { existingFile, makeDirs } from '../util/fs.js'
import { onInterrupt } from '../cache/interrupt.js'
import { removeTree } from '../runtime/rootfs-store.js'
import { VERSION, IMPLEMENTATION } from '../config/install-paths.js'
import { bundlePlan, parseSuperblock, type BundlePlan, type Superblock } from '../bundle/plan.js'
import { addRuntime, extractArgv } from '../bundle/payload.js'
import { launcherFiles } from '../bundle/launcher-files.js'
import { nodeRuntime } from '../bundle/node-runtime.js'
import { readHeaderTemplate, renderHeader } from '../bundle/header.js'
import { assemble, removeSoon, runStep, running, writePayload } from '../bundle/write.js'

const usage = `Usage: enroot bundle [options] [--] IMAGE

Create a self-extracting bundle from a container image.

 Options:
   -a, --all            Include user configuration files in the bundle
   -c, --checksum       Generate an embedded checksum
   -d, --desc TEXT      Provide a description of the bundle
   -o, --output BUNDLE  Name of the output bundle file (defaults to "IMAGE.run")
   -t, --target DIR     Target directory used by --keep (defaults to "$PWD/BUNDLE")
   -f, --force          Overwrite an existing bundle
`

function readSuperblock (image: string): Superblock {
  const r = spawnSync('unsquashfs', ['-s', image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
  const sb = r.status === 0 ? parseSuperblock(r.stdout) : undefined
  if (sb === undefined) throw new EnrootError('IMAGE', `Invalid image format: ${image}`)
  return sb
}

const onPath = (cfg: Config) => (prog: string): boolean =>
  (cfg.env.PATH ?? '/usr/bin:/bin').split(delimiter).some(d => { try { accessSync(join(d, prog), constants.X_OK); return true } catch { return false } })

/** enroot's --force: the existing file goes first; a directory is never removed. */
function clearOutput (plan: BundlePlan): void {
  if (!statSync(dirname(plan.output), { throwIfNoEntry: false })?.isDirectory()) throw noSuchFile(dirname(plan.output))
  const st = lstatSync(plan.output, { throwIfNoEntry: false })
  if (st === undefined) return
  if (!plan.force) throw fileExists(plan.output)
  if (st.isDirectory()) throw fileExists(plan.output, '--force does not remove directories')
  try { rmSync(plan.output, { force: true }) } catch (err) { throw fromSystemError(err, plan.output) }
}

async function build (plan: BundlePlan, cfg: Config): Promise<void> {
  const runtime = nodeRuntime()
  const launcher = launcherFiles()
  const template = readHeaderTemplate()
  if (runtime.unusualLibraries.length > 0) {
    log.warn(`${runtime.path} needs ${runtime.unusualLibraries.join(', ')}: hosts without them cannot run the bundle`)
  }
  if (plan.compression.fallbackFrom !== undefined) {
    log.warn(`No compressor for ${plan.compression.fallbackFrom} on this host: the bundle is compressed with gzip`)
  }
  makeDirs(plan.tempPath, 0o700)
  const scratch = mkdtempSync(join(plan.tempPath, 'enroot-bundle.'))
  const tmp = join(dirname(plan.output), `.${basename(plan.output)}.${process.pid}.tmp`)
  // On SIGINT/SIGTERM/SIGHUP: stop the subprocesses, then remove what they were writing (their last
  // writes may land after the kill, hence removeTree's retry), and die by the signal.
  const undo = onInterrupt(() => {
    for (const c of running) c.kill('SIGKILL')
    rmSync(tmp, { force: true })
    removeSoon(scratch)
  })
  try {
    const rootfs = join(scratch, 'rootfs')
    log.info('Extracting squashfs filesystem...')
    await runStep(extractArgv(plan.image, rootfs, cfg.int('ENROOT_MAX_PROCESSORS'), log.isTTY))
      .catch((err: unknown) => { throw new EnrootError('IMAGE', `Failed to extract squashfs filesystem: ${plan.image}`, { cause: err }) })
    addRuntime(rootfs, plan, runtime.path, launcher)
    log.info(`Generating bundle (${plan.compression.name})...`)
    const payloadFile = join(scratch, 'payload')
    const payload = await writePayload(rootfs, payloadFile, plan.compression, plan.sourceDateEpoch)
    const header = renderHeader(template, {
      description: plan.description,
      compression: plan.compression.name,
      decompress: plan.compression.decompress,
      targetDir: plan.target,
      payloadSize: payload.size,
      uncompressedKb: Math.ceil(payload.uncompressedSize / 1024),
      ...(plan.checksum ? { sha256: payload.sha256 } : {}),
      runtimeVersion: `${VERSION} (${IMPLEMENTATION}, node ${runtime.version})`,
      buildGlibc: runtime.glibc,
      entry: launcher.entry
    })
    await assemble(header, payloadFile, tmp, plan.output)
  } finally {
    removeTree(scratch)
    rmSync(tmp, { force: true })
    undo()
  }
}

export const command: Command = {
  usage,
  options: [
    { name: 'all', long: 'all', short: 'a' },
    { name: 'checksum', long: 'checksum', short: 'c' },
    { name: 'desc', long: 'desc', short: 'd', value: true },
    { name: 'output', long: 'output', short: 'o', value: true },
    { name: 'target', long: 'target', short: 't', value: true },
    { name: 'force', long: 'force', short: 'f' }
  ],
  async run (args, cfg) {
    const image = existingFile(oneOperand(args, 'IMAGE', usage))
    const sb = readSuperblock(image)
    const output = str(args, 'output')
    const target = str(args, 'target')
    const desc = str(args, 'desc')
    const plan = bundlePlan({
      image,
      ...(output === undefined ? {} : { output }),
      ...(target === undefined ? {} : { target }),
      ...(desc === undefined ? {} : { desc }),
      all: bool(args, 'all'),
      checksum: bool(args, 'checksum'),
      force: bool(args, 'force'),
      cwd: process.cwd()
    }, cfg, sb, { onPath: onPath(cfg), threads: cfg.int('ENROOT_MAX_PROCESSORS'), gzipProgram: cfg.get('ENROOT_GZIP_PROGRAM') ?? 'gzip' })
    clearOutput(plan)
    await build(plan, cfg)
    return 0
  }
}
