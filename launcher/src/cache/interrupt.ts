// Clean-up that must happen even when the user presses Ctrl-C or Slurm sends SIGTERM: remove partial
// files and release cache locks, so that other importers do not wait ENROOT_LOCK_STALE seconds for us.
//
// Cleanups are synchronous on purpose: a signal handler cannot wait for the event loop. After running
// them we restore the default action and re-raise the signal, so the process still dies *by that signal*
// (the shell and Slurm see 128+N, as they would without us). SIGKILL cannot be caught; the stale-lock
// rule (lock.ts) and the never-trusted tmp/ directory (store.ts) cover it.

type Cleanup = () => void

const cleanups = new Set<Cleanup>()
const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP']
let installed = false

function runAll (): void {
  for (const fn of [...cleanups].reverse()) {
    cleanups.delete(fn)
    try { fn() } catch { /* best effort: the next cleanup must still run */ }
  }
}

function onSignal (sig: NodeJS.Signals): void {
  runAll()
  for (const s of SIGNALS) process.removeListener(s, onSignal)
  process.kill(process.pid, sig)
}

function install (): void {
  if (installed) return
  installed = true
  for (const s of SIGNALS) process.on(s, onSignal)
  // A normal exit with work still registered (an exception thrown past us) must not leave locks behind.
  process.on('exit', runAll)
}

/** Register a synchronous cleanup; returns the function that unregisters it (call it once the work is done). */
export function onInterrupt (fn: Cleanup): () => void {
  install()
  cleanups.add(fn)
  return () => { cleanups.delete(fn) }
}
