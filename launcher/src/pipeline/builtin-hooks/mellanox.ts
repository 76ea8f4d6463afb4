// 99-mellanox: InfiniBand/RoCE devices for MELLANOX_VISIBLE_DEVICES (spec §9). Devices are found under
// /sys/bus/pci/drivers/mlx{4,5}_core/<pci>/ and numbered in PCI order. For the selected ones: the uverbs
// node (and rdma_cm) is bound when the container does not see the host /dev, and the sysfs classes that
// libibverbs enumerates are replaced by directories listing only the selected devices, so verbs
// applications see just those. umad/issm (management, raw MAD access) only for a superuser start.
// Not done on purpose: injecting the host's verbs provider libraries. Providers are tied to the private ABI
// of the libibverbs they were built with (IBVERBS_PRIVATE_NN); the image's rdma-core carries its own.
import { existsSync, mkdirSync, readdirSync, readlinkSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { EnrootError } from '../../util/errors.js'
import type { HookContext, HookOutput } from './types.js'
import { emptyOutput, flag } from './types.js'
import { fstabOps, escapeField, readText } from './util.js'
import { at } from './nvidia-driver.js'

export interface IbDevice { pci: string, ibdev?: string, uverbs: string[], umad: string[], issm: string[] }

const ls = (p: string): string[] => { try { return readdirSync(p).sort() } catch { return [] } }

export function discoverIb (root: string): IbDevice[] {
  const out: IbDevice[] = []
  for (const drv of ['mlx4_core', 'mlx5_core']) {
    const base = at(root, `/sys/bus/pci/drivers/${drv}`)
    for (const pci of ls(base).filter(n => /^[0-9a-f]{4,}:/.test(n))) {
      const d = join(base, pci)
      const ib = ls(join(d, 'infiniband'))[0]
      const mad = ls(join(d, 'infiniband_mad'))
      out.push({
        pci, ...(ib === undefined ? {} : { ibdev: ib }),
        uverbs: ls(join(d, 'infiniband_verbs')).filter(n => n.startsWith('uverbs')),
        umad: mad.filter(n => n.startsWith('umad')),
        issm: mad.filter(n => n.startsWith('issm'))
      })
    }
  }
  return out.sort((a, b) => a.pci < b.pci ? -1 : a.pci > b.pci ? 1 : 0)
}

export function selectIb (value: string, devs: readonly IbDevice[]): IbDevice[] {
  if (value === 'all') return [...devs]
  return value.split(',').map(s => s.trim()).filter(s => s !== '').map(id => {
    const d = /^\d+$/.test(id) ? devs[Number(id)] : devs.find(x => x.ibdev === id)
    if (d === undefined) throw new EnrootError('HOOK', `Unknown MELLANOX device id: ${id}`, { hint: `This node has ${devs.length} device(s): ${devs.map((x, i) => `${i} (${x.ibdev ?? x.pci})`).join(', ') || 'none'}` })
    return d
  })
}

const bind = (src: string, dst: string, opts: string): string => `${escapeField(src)} ${escapeField(dst)} none ${opts}`

export function mellanoxLines (root: string, sel: readonly IbDevice[], devBind: boolean, superuser: boolean): string[] {
  const out: string[] = []
  if (!devBind) return out
  const node = (name: string, optional: boolean): void => {
    const src = at(root, `/dev/infiniband/${name}`)
    if (existsSync(src)) out.push(bind(src, `/dev/infiniband/${name}`, `x-create=file,bind,ro,nosuid,noexec${optional ? ',nofail,silent' : ''}`))
  }
  node('rdma_cm', true)
  for (const d of sel) {
    for (const u of d.uverbs) node(u, false)
    if (superuser) for (const m of [...d.umad, ...d.issm]) node(m, false)
  }
  return out
}

/** Per sysfs class, a directory with the selected devices' links (copied from the host's, relative) and abi_version. */
export function sysfsView (rt: string, sel: readonly IbDevice[], superuser: boolean): { links: HookOutput['links'], files: HookOutput['files'], lines: string[] } {
  const links: HookOutput['links'] = []
  const files: HookOutput['files'] = []
  const lines: string[] = []
  const classes: Array<[string, (d: IbDevice) => string[]]> = [
    ['infiniband', d => d.ibdev === undefined ? [] : [d.ibdev]],
    ['infiniband_verbs', d => d.uverbs],
    ['infiniband_mad', d => superuser ? [...d.umad, ...d.issm] : []],
    ['infiniband_cm', () => []]
  ]
  for (const [cls, names] of classes) {
    const host = `/sys/class/${cls}`
    if (!existsSync(host)) continue
    const dir = join(rt, 'mellanox', cls)
    const abi = readText(join(host, 'abi_version'))
    files.push({ path: join(dir, 'abi_version'), inRootfs: false, content: abi ?? '', mode: 0o444 })
    for (const d of sel) for (const n of names(d)) {
      try { links.push({ path: join(dir, n), target: readlinkSync(join(host, n)) }) } catch {}
    }
    lines.push(bind(dir, host, 'bind,ro,nosuid,nodev,noexec,nofail'))
  }
  return { links, files, lines }
}

export function mellanox (ctx: HookContext): HookOutput {
  const out = emptyOutput()
  const value = (ctx.env.MELLANOX_VISIBLE_DEVICES ?? ctx.environ.filter(l => l.startsWith('MELLANOX_VISIBLE_DEVICES=')).at(-1)?.slice(25) ?? '').trim()
  if (value === '' || value === 'void' || value === 'none') return out
  const root = ctx.env.ENROOT_DRIVER_ROOT === undefined || ctx.env.ENROOT_DRIVER_ROOT === '' ? '/' : ctx.env.ENROOT_DRIVER_ROOT
  const sel = selectIb(value, discoverIb(root))
  const superuser = flag(ctx.env, 'ENROOT_ALLOW_SUPERUSER') && ctx.uid === 0
  // as in 98-nvidia: nodes are bound only into a private /dev, never over the host's
  const devBind = flag(ctx.env, 'ENROOT_RESTRICT_DEV') || flag(ctx.env, 'ENROOT_UNSHARE_IPC')
  const lines = mellanoxLines(root, sel, devBind, superuser)
  if (root === '/') {
    const view = sysfsView(ctx.runtimeDir, sel, superuser)
    // the bridge creates link directories but not file directories; a class may have no selected link
    for (const f of view.files) mkdirSync(dirname(f.path), { recursive: true, mode: 0o755 })
    out.links = view.links
    out.files = view.files
    lines.push(...view.lines)
  }
  out.fstab = fstabOps(lines, 'hooks.d/99-mellanox.sh')
  return out
}
