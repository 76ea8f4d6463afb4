// The bridge between the built-in hooks (data) and the engine: it prepares what a hook asked for on the
// host side (runtime-directory files and links, confined writes into the rootfs) and hands the engine the
// two outputs of enroot's hook contract, environment lines and mounts.
import { closeSync, constants, lstatSync, mkdirSync, openSync, readlinkSync, symlinkSync, writeFileSync, writeSync } from 'node:fs'
import { dirname, join } from 'node:path'
import type { HookSpec } from '../../runtime/plan-types.js'
import type { BuiltinHookContext, BuiltinHookResult } from '../../runtime/engine.js'
import type { HookContext, HookOutput } from './types.js'
import { runBuiltinHook } from './index.js'
import { EnrootError } from '../../util/errors.js'
import { isTerminal } from '../../runtime/native.js'

/**
 * Walk `rel` below `base` refusing symlinks and `..`: an image could otherwise point /etc/passwd at a file
 * of the caller's on the host. Missing directories are created (0755) when `create` is set.
 */
function confined (base: string, rel: string, create: boolean): string {
  const parts = rel.split('/').filter(p => p !== '' && p !== '.')
  if (parts.includes('..')) throw new EnrootError('HOOK', `refusing to write outside the rootfs: ${rel}`)
  let cur = base
  for (const p of parts.slice(0, -1)) {
    cur = join(cur, p)
    const st = lstatSync(cur, { throwIfNoEntry: false })
    if (st === undefined && create) { mkdirSync(cur, { mode: 0o755 }); continue }
    if (st === undefined || !st.isDirectory()) throw new EnrootError('HOOK', `refusing to write through ${rel}: not a directory in the rootfs`)
  }
  return join(cur, parts.at(-1) ?? '')
}

function writeInRootfs (base: string, rel: string, content: string, mode: number): void {
  const path = confined(base, rel, true)
  const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, mode)
  try { writeSync(fd, content) } finally { closeSync(fd) }
}

function mkdirInRootfs (base: string, rel: string, mode: number): void {
  const path = confined(base, rel, true)
  if (lstatSync(path, { throwIfNoEntry: false }) === undefined) mkdirSync(path, { mode })
}

/** Carry out the host-side part of a hook's output; `rootfs` reaches the container rootfs from here. */
export function applyHostSide (out: HookOutput, rootfs: string): void {
  for (const l of out.links) {
    mkdirSync(dirname(l.path), { recursive: true, mode: 0o755 })
    try { symlinkSync(l.target, l.path) } catch (err) { if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err }
  }
  for (const f of out.files) {
    if (f.inRootfs) writeInRootfs(rootfs, f.path, f.content, f.mode)
    else writeFileSync(f.path, f.content, { mode: f.mode })
  }
  for (const d of out.dirs) mkdirInRootfs(rootfs, d.path, d.mode)
}

const stdinTty = (): string | undefined => {
  if (!isTerminal(0)) return undefined
  try { return readlinkSync('/proc/self/fd/0') } catch { return undefined }
}

/** The engine's `builtinHook` option: ctx.pid's root plus ctx.rootfs is the rootfs as this process sees it. */
export async function engineBuiltinHook (spec: HookSpec, ctx: BuiltinHookContext): Promise<BuiltinHookResult> {
  const rootfs = `/proc/${ctx.pid}/root${ctx.rootfs}`
  const tty = stdinTty()
  const hctx: HookContext = {
    rootfs, runtimeDir: ctx.runtimeDir, env: ctx.env, environ: ctx.environ,
    uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, ...(tty === undefined ? {} : { stdinTty: tty })
  }
  const out = await runBuiltinHook(spec.builtin ?? '', hctx)
  applyHostSide(out, rootfs)
  // Direct mounts happen before the next hook (as enroot-mount did inside the shell hook); fstab lines after all hooks.
  return { environ: out.environ, direct: out.mount, mounts: out.fstab }
}
