// Waiting for and finding processes, for the tests that check what a container leaves running.
import { readFileSync, readdirSync } from 'node:fs'

/** Polls cond every 20 ms; false once ms have passed without it holding. */
export async function until (cond: () => boolean, ms = 15000): Promise<boolean> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) return false
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  return true
}

/** Host pids (not ours) whose command line contains marker. */
export function pidsWith (marker: string): number[] {
  const out: number[] = []
  for (const n of readdirSync('/proc')) {
    if (!/^\d+$/.test(n) || Number(n) === process.pid) continue
    try { if (readFileSync(`/proc/${n}/cmdline`, 'utf8').replace(/\0/g, ' ').includes(marker)) out.push(Number(n)) } catch {}
  }
  return out
}

/** The command line of pid, NULs as spaces ('' once it is gone). */
export function cmdline (pid: number): string {
  try { return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ') } catch { return '' }
}
