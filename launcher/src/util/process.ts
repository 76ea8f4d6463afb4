// Facts about other processes.

/** `kill -0 PID`: a process we may signal (a pid reused by another user's process is not ours). */
export function signalable (pid: number): boolean {
  try { process.kill(pid, 0); return true } catch { return false }
}
