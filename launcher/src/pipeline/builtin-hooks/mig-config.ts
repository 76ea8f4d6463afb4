// 50-mig-config (extra, opt-in as in enroot): when the selected GPUs are in MIG mode and the container asked
// for whole GPUs, give it the MIG configuration capability (NVIDIA_MIG_CONFIG_DEVICES=all), which 98-nvidia
// then honours. Asks nvidia-smi, so it costs a fraction of a second: that is why it is opt-in.
import type { HookContext, HookOutput } from './types.js'
import { emptyOutput } from './types.js'
import { nvidiaVars } from './nvidia.js'
import { runSmi, parseSmiMigEnabled } from './nvidia-smi.js'

export function migConfigWanted (visible: string | undefined): boolean {
  const v = (visible ?? '').trim()
  return v !== '' && v !== 'none' && v !== 'void' && !v.includes('MIG-') && !/\d:\d/.test(v)
}

export function migConfig (ctx: HookContext, smi = runSmi): HookOutput {
  const out = emptyOutput()
  const v = nvidiaVars(ctx.env, ctx.environ).NVIDIA_VISIBLE_DEVICES
  if (!migConfigWanted(v)) return out
  const root = ctx.env.ENROOT_DRIVER_ROOT === undefined || ctx.env.ENROOT_DRIVER_ROOT === '' ? '/' : ctx.env.ENROOT_DRIVER_ROOT
  const args = ['--query-gpu=mig.mode.current', '--format=csv,noheader', ...(v === 'all' ? [] : ['-i', v ?? ''])]
  if (parseSmiMigEnabled(smi(root, args) ?? '')) out.environ = ['NVIDIA_MIG_CONFIG_DEVICES=all']
  return out
}
