import { readdirSync, readFileSync, readlinkSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import type { Command } from './types.js'
import { UsageError, EnrootError } from '../util/errors.js'
import { bool } from '../util/args.js'
import { dataPath } from '../runtime/rootfs-store.js'

const usage = `Usage: enroot list [options]

List all the container root filesystems on the system.

 Options:
   -f, --fancy  Display more information in tabular format
`

/** `ls -1`: every non-hidden entry, stray files included (enroot does the same). */
function names (dir: string): string[] {
  try {
    return readdirSync(dir).filter(n => !n.startsWith('.')).sort((a, b) => a < b ? -1 : a > b ? 1 : 0)
  } catch {
    throw new EnrootError('NOT_FOUND', `Could not change directory: ${dir}`)
  }
}

export interface ProcRow { pid: number, comm: string, state: string, started: string, time: string, mntns: string, userns: string, command: string }

const nsInode = (pid: number, ns: string): string => /\[(\d+)\]/.exec(readlinkSync(`/proc/${pid}/ns/${ns}`))?.[1] ?? ''
const pad2 = (n: number): string => String(n).padStart(2, '0')

function cpuTime (ticks: number): string {
  const s = Math.floor(ticks / 100)
  const d = Math.floor(s / 86400)
  const hms = `${pad2(Math.floor(s / 3600) % 24)}:${pad2(Math.floor(s / 60) % 60)}:${pad2(s % 60)}`
  return d > 0 ? `${d}-${hms}` : hms
}

function startTime (startTicks: number, bootSec: number): string {
  const t = new Date((bootSec + startTicks / 100) * 1000)
  if (Date.now() - t.getTime() < 86400e3) return `${pad2(t.getHours())}:${pad2(t.getMinutes())}:${pad2(t.getSeconds())}`
  return `${t.toLocaleString('en-US', { month: 'short' })} ${pad2(t.getDate())}`
}

interface Stat { comm: string, fields: string[] }

function readStat (pid: number): Stat {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const close = stat.lastIndexOf(')')
  return { comm: stat.slice(stat.indexOf('(') + 1, close), fields: stat.slice(close + 2).split(' ') }
}

/** Everything `ps` would show for one pid; throws if the pid vanished meanwhile (the caller skips it: enroot#126). */
function procRow (pid: number, st: Stat, bootSec: number): ProcRow {
  const f = st.fields
  const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ')
  return {
    pid, comm: st.comm, state: f[0] ?? '', started: startTime(Number(f[19]), bootSec), time: cpuTime(Number(f[11]) + Number(f[12])),
    mntns: nsInode(pid, 'mnt'), userns: nsInode(pid, 'user'), command: cmdline === '' ? `[${st.comm}]` : cmdline
  }
}

/**
 * Our own starts: each runtime directory holds `name`, `.owner` ("<pid> <start time>") and, once forked,
 * `container` (the container's first pid), all written by the engine. The container's processes descend
 * from that pid, and from the owner; the container pid wins, since one owner (the Slurm launcher) may run
 * several containers. Stale directories (a reused pid has another start time) are ignored; a directory
 * without a name (an image file started directly) names its processes ''.
 */
interface Starts { owners: Map<number, string>, children: Map<number, string> }

function ownStarts (runtimePath: string, stats: Map<number, Stat>): Starts {
  const out: Starts = { owners: new Map(), children: new Map() }
  let dirs: string[] = []
  try { dirs = readdirSync(runtimePath) } catch {}
  for (const d of dirs) {
    try {
      const [pid, start] = readFileSync(join(runtimePath, d, '.owner'), 'utf8').trim().split(' ')
      if (stats.get(Number(pid))?.fields[19] !== start) continue
      let name = ''
      try { name = readFileSync(join(runtimePath, d, 'name'), 'utf8').trim() } catch {}
      if (!out.owners.has(Number(pid))) out.owners.set(Number(pid), name)
      let child = NaN
      try { child = Number(readFileSync(join(runtimePath, d, 'container'), 'utf8').trim()) } catch {}
      // the container pid must still be the owner's child (not a reused pid)
      if (Number.isInteger(child) && Number(stats.get(child)?.fields[1]) === Number(pid)) out.children.set(child, name)
    } catch {}
  }
  return out
}

/** enroot's own rule, for containers it started: the root of the `/` mount, relative to the data path. */
function containerOf (pid: number, data: string): string | undefined {
  const root = readFileSync(`/proc/${pid}/mountinfo`, 'utf8').split('\n').map(l => l.split(' ')).find(f => f[4] === '/')?.[3]
  if (root === undefined) return undefined
  // The root field is relative to the filesystem holding it; match it against each tail of the data path.
  const parts = data.split('/').filter(Boolean)
  for (let i = 0; i < parts.length; i++) {
    const base = `/${parts.slice(i).join('/')}/`
    if (root.startsWith(base)) return root.slice(base.length).split('/')[0]
  }
  return existsSync(`/proc/${pid}/root/.lock`) ? '' : undefined
}

/** The container of a process: a start it descends from, else enroot's mount rule; '' when unnamed. */
function nameOf (pid: number, stats: Map<number, Stat>, starts: Starts, data: string): string | undefined {
  const own = starts.children.get(pid)
  if (own !== undefined) return own
  for (let p = Number(stats.get(pid)?.fields[1]), hops = 0; p > 1 && hops < 64; p = Number(stats.get(p)?.fields[1]), hops++) {
    const name = starts.children.get(p) ?? starts.owners.get(p)
    if (name !== undefined) return name
  }
  return containerOf(pid, data)
}

/** One pid per mount namespace (the lowest), for every namespace that belongs to a container. */
export function containerProcesses (data: string, runtimePath: string): Map<string, ProcRow[]> {
  const out = new Map<string, ProcRow[]>()
  const bootSec = Number(/^btime (\d+)/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1] ?? 0)
  const stats = new Map<number, Stat>()
  for (const pid of readdirSync('/proc').filter(n => /^\d+$/.test(n)).map(Number).sort((a, b) => a - b)) {
    try { stats.set(pid, readStat(pid)) } catch {}
  }
  const starts = ownStarts(runtimePath, stats)
  const seen = new Set<string>()
  for (const [pid, st] of stats) {
    try {
      const name = nameOf(pid, stats, starts, data)
      if (name === undefined) continue
      const ns = nsInode(pid, 'mnt')
      if (seen.has(ns)) continue
      seen.add(ns)
      const key = name === '' ? '<unknown>' : name
      out.set(key, [...(out.get(key) ?? []), procRow(pid, st, bootSec)])
    } catch {
      // vanished, or not ours to read
    }
  }
  return out
}

/** `column -t`: columns padded to their widest cell, two spaces apart, the last one unpadded. */
export function table (rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map(r => (r[i] ?? '').length))) ?? []
  return rows.map(r => r.map((c, i) => i === r.length - 1 ? c : c.padEnd((widths[i] as number) + 2)).join('').trimEnd() + '\n').join('')
}

function fancy (data: string, runtimePath: string, list: string[]): string {
  const procs = containerProcesses(data, runtimePath)
  const rows: string[][] = [['NAME', 'PID', 'COMM', 'STATE', 'STARTED', 'TIME', 'MNTNS', 'USERNS', 'COMMAND']]
  const keys = [...list, ...(procs.has('<unknown>') ? ['<unknown>'] : [])]
  for (const name of keys) {
    const ps = procs.get(name) ?? []
    if (ps.length === 0) rows.push([name])
    ps.forEach((p, i) => rows.push([i === 0 ? name : '', String(p.pid), p.comm, p.state, p.started, p.time, p.mntns, p.userns, p.command]))
  }
  return table(rows)
}

export const command: Command = {
  usage,
  options: [{ name: 'fancy', long: 'fancy', short: 'f' }],
  async run (args, cfg) {
    if (args.rest.length > 0) throw new UsageError(`Unexpected argument: ${args.rest[0] ?? ''}`, usage)
    const data = dataPath(cfg)
    const list = names(data)
    process.stdout.write(bool(args, 'fancy') ? fancy(data, cfg.get('ENROOT_RUNTIME_PATH') ?? '', list) : list.map(n => `${n}\n`).join(''))
    return 0
  }
}
