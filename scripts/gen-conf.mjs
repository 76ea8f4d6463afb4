#!/usr/bin/env node
// Generates etc/enroot.conf from the settings table; with --check, fails when the file is out of date.
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const { SETTINGS } = await import(join(root, 'dist', 'config', 'settings.js'))

const titles = { paths: 'Paths', import: 'Image import and export', network: 'Registry access', runtime: 'Container runtime', hooks: 'Standard hooks', bundle: 'Bundles' }
let out = '# enroot.conf: every setting with its default, commented out.\n' +
  '# Format (as enroot): KEY VALUE or KEY=VALUE; values are evaluated by the shell (`eval echo VALUE`).\n' +
  '# A non-empty environment variable of the same name wins over this file; files in enroot.conf.d/*.conf\n' +
  '# are read after this one. Values n, no, f, false (any case as enroot spells them) mean "off".\n' +
  '# Generated from launcher/src/config/settings.ts by scripts/gen-conf.mjs: edit the table, not this file.\n'
for (const section of Object.keys(titles)) {
  const rows = SETTINGS.filter((s) => s.section === section)
  if (rows.length === 0) continue
  out += `\n# ${titles[section]}\n`
  for (const s of rows) out += `\n# ${s.doc}\n#${s.key.padEnd(27)}${s.confDefault}\n`
}
const target = join(root, 'etc', 'enroot.conf')
if (process.argv.includes('--check')) {
  let cur = ''
  try { cur = readFileSync(target, 'utf8') } catch {}
  if (cur !== out) { console.error('etc/enroot.conf is out of date: run node scripts/gen-conf.mjs'); process.exit(1) }
} else {
  writeFileSync(target, out)
}
