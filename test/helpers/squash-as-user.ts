// Runs buildSquashfs as the unprivileged test user in a child node (the point of the design: import
// needs no root, no capabilities, no trusted.* xattrs), and reads images back with unsquashfs, also
// as the test user, so that results come from the real tools rather than from our own code.
import { spawnSync } from 'node:child_process'
import { REPO, IS_ROOT, runAsUser, testUser } from './env.js'
import type { ExtraFile, LayerFile } from '../../launcher/src/image/types.js'

export interface BuildJob {
  layers: LayerFile[]
  extraFiles?: ExtraFile[]
  output: string
  tmpdir: string
  squashOptions?: string
  processors?: number
  sourceDateEpoch?: number
}

export type BuildResult =
  | { ok: true, stats: { entries: number, droppedDevices: number, spooledFiles: number }, progress: number, stderr: string }
  | { ok: false, code: string, message: string, stderr: string }

const loader = process.execArgv.find(a => a.includes('@tapjs/typescript')) ??
  `--import=file://${REPO}/node_modules/@tapjs/typescript/dist/esm/import.mjs`

const CHILD = `
const { buildSquashfs } = await import(${JSON.stringify(`file://${REPO}/launcher/src/image/squash.ts`)})
let input = ''
for await (const c of process.stdin) input += c
const job = JSON.parse(input)
let progress = 0
try {
  const stats = await buildSquashfs({ extraFiles: [], squashOptions: '-comp gzip', processors: 1, ...job,
    onProgress: (e) => { progress = e.bytes } })
  console.log(JSON.stringify({ ok: true, stats, progress }))
} catch (e) {
  console.log(JSON.stringify({ ok: false, code: e.code, message: e.message }))
}
`

export async function buildAsUser (job: BuildJob): Promise<BuildResult> {
  // env -u: tap's process-info hook adds NODE_OPTIONS to children, and its exit hook cannot write
  // into the repository as the test user.
  const r = await runAsUser('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, loader, '--input-type=module', '-e', CHILD], {
    input: JSON.stringify(job),
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', TS_NODE_TRANSPILE_ONLY: '1', HOME: '/tmp' }
  })
  const line = r.stdout.trim().split('\n').pop() ?? ''
  try {
    return { ...JSON.parse(line), stderr: r.stderr }
  } catch {
    throw new Error(`child failed (status ${String(r.status)}): ${r.stdout}\n${r.stderr}`)
  }
}

/**
 * A read-only tool as the test user. (Not runAsUser: it always writes stdin, and a tool that exits
 * without reading it raises an uncaught EPIPE in the test process.)
 */
function asUser (cmd: string, args: string[]): { status: number | null, stdout: string, stderr: string } {
  const u = IS_ROOT ? testUser() : undefined
  const r = spawnSync(cmd, args, { encoding: 'latin1', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 28, ...(u !== undefined ? { uid: u.uid, gid: u.gid } : {}) })
  return { status: r.status, stdout: Buffer.from(r.stdout, 'latin1').toString('utf8'), stderr: r.stderr }
}

export interface Listed { mode: string, size: string, target?: string }

/** `unsquashfs -lln` as the test user: path (absolute, '/' for the root) → mode, size, link target. */
export async function listImage (image: string): Promise<Map<string, Listed>> {
  const r = asUser('unsquashfs', ['-lln', image])
  if (r.status !== 0) throw new Error(`unsquashfs -lln failed: ${r.stderr}`)
  const out = new Map<string, Listed>()
  for (const line of r.stdout.split('\n')) {
    const m = /^(\S{10}) (\d+)\/(\d+)\s+(\d+|\d+,\s*\d+)\s+\d{4}-\d\d-\d\d \d\d:\d\d squashfs-root(.*)$/.exec(line)
    if (m === null) continue
    const [path, target] = (m[5] as string).split(' -> ')
    if (m[2] !== '0' || m[3] !== '0') throw new Error(`not root-owned: ${line}`)
    out.set(path === '' ? '/' : path as string, { mode: m[1] as string, size: m[4] as string, ...(target !== undefined ? { target } : {}) })
  }
  return out
}

/** `unsquashfs -cat` as the test user. */
export async function catImage (image: string, path: string): Promise<string> {
  const r = asUser('unsquashfs', ['-cat', image, path])
  if (r.status !== 0) throw new Error(`unsquashfs -cat ${path} failed: ${r.stderr}`)
  return r.stdout
}

/** `rdsquashfs -s`: the inode number and hard link count of a path. */
export async function statImage (image: string, path: string): Promise<{ inode: number, links: number }> {
  const r = asUser('rdsquashfs', ['-s', path, image])
  if (r.status !== 0) throw new Error(`rdsquashfs -s ${path} failed: ${r.stderr}`)
  const field = (name: string): number => Number(new RegExp(`^${name}: (\\d+)`, 'm').exec(r.stdout)?.[1] ?? NaN)
  return { inode: field('Inode number'), links: field('Hard link count') }
}

/** `rdsquashfs -x`: the xattrs of a path as printed (one `key=value` per line). */
export async function xattrsImage (image: string, path: string): Promise<string> {
  const r = asUser('rdsquashfs', ['-x', path, image])
  if (r.status !== 0) throw new Error(`rdsquashfs -x ${path} failed: ${r.stderr}`)
  return r.stdout
}
