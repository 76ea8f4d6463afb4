// The import's progress line: download bytes per layer, then the conversion, one redrawn line per phase.
import t from 'tap'
import { progressLine } from '../../launcher/src/image/import-progress.js'

function fakeTty (): { stream: NodeJS.WriteStream, text: () => string } {
  let out = ''
  const stream = { write: (s: string) => { out += s; return true } } as unknown as NodeJS.WriteStream
  return { stream, text: () => out }
}

t.test('shows layers done and bytes while downloading, counting cached layers as complete', async t => {
  const f = fakeTty()
  const p = progressLine(f.stream)
  p.onEvent({ kind: 'phase', phase: 'download' })
  p.onEvent({ kind: 'layer-start', digest: 'a', size: 2 * 1024 * 1024 })
  p.onEvent({ kind: 'layer-start', digest: 'b', size: 1024 * 1024 })
  p.onEvent({ kind: 'layer-done', digest: 'b', cached: true })
  p.onEvent({ kind: 'layer-bytes', digest: 'a', bytes: 2 * 1024 * 1024 })
  p.onEvent({ kind: 'layer-done', digest: 'a', cached: false })
  t.match(f.text(), /\r\x1b\[KDownloading: 2\/2 layers, 3\.0 MB of 3\.0 MB$/)
})

t.test('a new phase ends the line, and the conversion shows its share of the input', async t => {
  const f = fakeTty()
  const p = progressLine(f.stream)
  p.onEvent({ kind: 'layer-start', digest: 'a', size: 10 })
  p.onEvent({ kind: 'layer-done', digest: 'a', cached: true })
  p.onEvent({ kind: 'phase', phase: 'convert' })
  p.onEvent({ kind: 'convert-bytes', bytes: 100, total: 100 })
  p.finish()
  t.match(f.text(), /layers, .*\n\r\x1b\[KConverting: 100% of 0\.0 MB\n$/)
})

t.test('while lower layers still download, the line shows the download and the conversion', async t => {
  const f = fakeTty()
  const p = progressLine(f.stream)
  p.onEvent({ kind: 'phase', phase: 'download' })
  p.onEvent({ kind: 'layer-start', digest: 'top', size: 1024 * 1024 })
  p.onEvent({ kind: 'layer-start', digest: 'bottom', size: 3 * 1024 * 1024 })
  p.onEvent({ kind: 'phase', phase: 'convert' })
  p.onEvent({ kind: 'convert-bytes', bytes: 1024 * 1024, total: 4 * 1024 * 1024 })
  p.onEvent({ kind: 'layer-done', digest: 'top', cached: true })
  t.match(f.text(), /\r\x1b\[KDownloading: 1\/2 layers, 1\.0 MB of 4\.0 MB; Converting: 25% of 4\.0 MB$/)
  p.onEvent({ kind: 'layer-bytes', digest: 'bottom', bytes: 3 * 1024 * 1024 })
  p.onEvent({ kind: 'layer-done', digest: 'bottom', cached: false })
  t.match(f.text(), /\r\x1b\[KConverting: 25% of 4\.0 MB$/, 'every layer is in: only the conversion is left')
  p.onEvent({ kind: 'convert-bytes', bytes: 4 * 1024 * 1024, total: 4 * 1024 * 1024 })
  t.match(f.text(), /\r\x1b\[KConverting: 100% of 4\.0 MB$/)
})
