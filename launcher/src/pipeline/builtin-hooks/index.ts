// The built-in implementations of the shipped hooks.d/NN-*.sh files, by the name their marker line gives.
// They run in-process (no bash, no awk, no getent in the common case), which keeps `enroot start` cheap.
// The standard 10-* hooks run at every start and are loaded with this module; the hardware and site hooks
// (98-nvidia, 99-mellanox, the 50-* extras) are loaded only when they have something to do: the NVIDIA
// modules alone cost ~10 ms of start-up on a node, or in a container, that asks for no GPU.
import type { HookContext, HookOutput } from './types.js'
import { aptfix } from './aptfix.js'
import { cgroups } from './cgroups.js'
import { devices } from './devices.js'
import { home } from './home.js'
import { localtime } from './localtime.js'
import { shadow } from './shadow.js'
import { emptyOutput } from './types.js'

export type { HookContext, HookOutput, FileOp } from './types.js'

type Hook = (ctx: HookContext) => HookOutput

const STANDARD: Readonly<Record<string, Hook>> = { aptfix, cgroups, devices, home, localtime, shadow }

/** A variable as the hooks read it (enroot's rule): the hook environment wins over the container's. */
function hookVar (ctx: HookContext, key: string): string | undefined {
  if (Object.hasOwn(ctx.env, key)) return ctx.env[key]
  return ctx.environ.filter(l => l.startsWith(`${key}=`)).at(-1)?.slice(key.length + 1)
}
const asks = (ctx: HookContext, key: string, off: readonly string[]): boolean => {
  const v = (hookVar(ctx, key) ?? '').trim()
  return v !== '' && !off.includes(v)
}

interface LazyHook {
  /** false only when the hook would certainly do nothing (its own first check, repeated here) */
  wanted: (ctx: HookContext) => boolean
  load: () => Promise<Hook>
}

const LAZY: Readonly<Record<string, LazyHook>> = {
  nvidia: { wanted: ctx => asks(ctx, 'NVIDIA_VISIBLE_DEVICES', ['void']), load: async () => (await import('./nvidia.js')).nvidia },
  'mig-config': { wanted: ctx => asks(ctx, 'NVIDIA_VISIBLE_DEVICES', ['void', 'none']), load: async () => { const { migConfig } = await import('./mig-config.js'); return (ctx) => migConfig(ctx) } },
  mellanox: { wanted: ctx => asks(ctx, 'MELLANOX_VISIBLE_DEVICES', ['void', 'none']), load: async () => (await import('./mellanox.js')).mellanox },
  'slurm-pmi': { wanted: () => true, load: async () => (await import('./slurm-pmi.js')).slurmPmi },
  'slurm-pytorch': { wanted: () => true, load: async () => (await import('./slurm-pytorch.js')).slurmPytorch }
}

export function isBuiltinHook (name: string): boolean {
  return Object.hasOwn(STANDARD, name) || Object.hasOwn(LAZY, name)
}

/** Run a built-in hook by name (HookSpec.builtin). */
export async function runBuiltinHook (name: string, ctx: HookContext): Promise<HookOutput> {
  if (Object.hasOwn(STANDARD, name)) return (STANDARD[name] as Hook)(ctx)
  const lazy = Object.hasOwn(LAZY, name) ? LAZY[name] : undefined
  if (lazy === undefined) throw new Error(`unknown built-in hook: ${name}`)
  if (!lazy.wanted(ctx)) return emptyOutput()
  return (await lazy.load())(ctx)
}
