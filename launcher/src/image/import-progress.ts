// The import's progress line on a TTY (STYLE: progress bars only on a TTY; quiet otherwise).
// One line, redrawn at most 10 times a second: bytes of the layers being downloaded, and the share of
// the compressed input the converter has read; the two overlap (the converter starts with the top-most
// layer while lower ones download), so while both run the line shows both. A phase change ends the
// line so log lines do not mix in.
import type { ProgressEvent } from './types.js'

const MB = 1024 * 1024
const mb = (n: number): string => `${(n / MB).toFixed(1)} MB`

export interface ProgressLine { onEvent: (e: ProgressEvent) => void, finish: () => void }

export function progressLine (stream: NodeJS.WriteStream): ProgressLine {
  const sizes = new Map<string, number>()
  let received = 0
  let done = 0
  let downloading = ''
  let converting = ''
  let drawn = 0
  let open = false

  const draw = (force: boolean): void => {
    const now = Date.now()
    if (!force && now - drawn < 100) return
    drawn = now
    // Once every layer is in, only the conversion is left to show.
    const text = converting === '' ? downloading : done < sizes.size ? `${downloading}; ${converting}` : converting
    stream.write(`\r\x1b[K${text}`)
    open = true
  }
  const endLine = (): void => { if (open) { stream.write('\n'); open = false } }

  return {
    onEvent (e) {
      switch (e.kind) {
        case 'phase': endLine(); return
        case 'layer-start': sizes.set(e.digest, e.size); break
        case 'layer-bytes': received += e.bytes; break
        case 'layer-done': done++; if (e.cached) received += sizes.get(e.digest) ?? 0; break
        case 'convert-bytes':
          converting = `Converting: ${e.total > 0 ? Math.floor(100 * e.bytes / e.total) : 100}% of ${mb(e.total)}`
          draw(e.bytes >= e.total)
          return
        default: { const never: never = e; return never }
      }
      let total = 0
      for (const s of sizes.values()) total += s
      downloading = `Downloading: ${done}/${sizes.size} layers, ${mb(received)} of ${mb(total)}`
      draw(e.kind === 'layer-done')
    },
    finish: endLine
  }
}
