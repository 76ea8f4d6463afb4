// The built-in implementations of the shipped hooks.d/10-*.sh files, by the name their marker line gives.
// They run in-process (no bash, no awk, no getent in the common case), which is what keeps `enroot start`
// within a few milliseconds of `node -e 0`.
import type { HookContext, HookOutput } from './types.js'
import { aptfix } from './aptfix.js'
import { cgroups } from './cgroups.js'
import { devices } from './devices.js'
import { home } from './home.js'
import { localtime } from './localtime.js'
import { shadow } from './shadow.js'
import { nvidia } from './nvidia.js'
import { mellanox } from './mellanox.js'
import { slurmPmi } from './slurm-pmi.js'
import { slurmPytorch } from './slurm-pytorch.js'
import { migConfig } from './mig-config.js'

export type { HookContext, HookOutput, FileOp } from './types.js'

export const BUILTIN_HOOKS: Readonly<Record<string, (ctx: HookContext) => HookOutput>> = {
  aptfix, cgroups, devices, home, localtime, shadow,
  nvidia, mellanox, 'slurm-pmi': slurmPmi, 'slurm-pytorch': slurmPytorch, 'mig-config': (ctx) => migConfig(ctx)
}

export function isBuiltinHook (name: string): boolean {
  return Object.hasOwn(BUILTIN_HOOKS, name)
}

/** Run a built-in hook by name (HookSpec.builtin). */
export function runBuiltinHook (name: string, ctx: HookContext): HookOutput {
  const fn = Object.hasOwn(BUILTIN_HOOKS, name) ? BUILTIN_HOOKS[name] : undefined
  if (fn === undefined) throw new Error(`unknown built-in hook: ${name}`)
  return fn(ctx)
}
