// The launcher service's image holders (runtime/engine.ts startLowerHolder): one per image file and user
// mapping, so that a job's steps on a node share one squashfuse mount of their image, with its pages
// cached, instead of each starting squashfuse and reading the image cold. Kept while the service runs:
// a container's lower layer is the holder's mount, so a holder must outlive every container that uses it.
import { mkdirSync, readdirSync, rmdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { startLowerHolder, type LowerHolder } from '../runtime/engine.js'
import { signalable } from '../util/process.js'

export class LowerHolders {
  private readonly holders = new Map<string, Promise<LowerHolder | undefined>>()
  private made = 0

  /** dir: the user's own runtime directory on the node (0700), where each holder gets an empty directory. */
  constructor (private readonly dir: string) {
    // Directories of services that are gone (a killed service leaves them empty): never a live one's, whose
    // holder's mount sits on it in the holder's own mount namespace.
    let names: string[] = []
    try { names = readdirSync(dir) } catch {}
    for (const n of names) {
      const pid = /^lower\.(\d+)\.\d+$/.exec(n)?.[1]
      // a pid now another user's is not the service that made the directory either
      if (pid !== undefined && !signalable(Number(pid))) try { rmdirSync(join(dir, n)) } catch {}
    }
  }

  /** A holder of `image` for containers whose user namespace maps innerUid/innerGid; undefined if none can be had. */
  async get (image: string, innerUid: number, innerGid: number): Promise<LowerHolder | undefined> {
    let key: string
    try {
      const st = statSync(image)
      // the file as it is now: a replaced or rewritten image gets a holder of its own
      key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${innerUid}:${innerGid}`
    } catch { return undefined }
    let holder = this.holders.get(key)
    if (holder === undefined) {
      const mntDir = join(this.dir, `lower.${process.pid}.${this.made++}`)
      const forget = (): void => { this.holders.delete(key); try { rmdirSync(mntDir) } catch {} }
      holder = (async () => {
        mkdirSync(mntDir, { mode: 0o700 })
        const h = await startLowerHolder({ image, mntDir, innerUid, innerGid })
        void h.ended.then(forget)
        return h
      })().catch(() => { forget(); return undefined })
      this.holders.set(key, holder)
    }
    return await holder
  }

  /** Ends every holder: only once no container uses them. */
  async stop (): Promise<void> {
    for (const h of await Promise.all(this.holders.values())) {
      if (h === undefined) continue
      try { process.kill(h.pid, 'SIGKILL') } catch {}
      await h.ended.catch(() => {})
    }
  }
}
