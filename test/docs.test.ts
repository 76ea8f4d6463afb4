// One source for help and docs: each command's --help text is the Usage block of doc/cmd/<command>.md,
// and etc/enroot.conf is generated from the settings table.
import t from 'tap'
import { readdirSync, readFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { execFileSync } from 'node:child_process'
import { REPO } from './helpers/env.js'

const hidden = new Set(['types', 'slurm-launch'])
const modules = readdirSync(join(REPO, 'launcher', 'src', 'commands'))
  .filter(f => f.endsWith('.ts')).map(f => f.slice(0, -3)).filter(n => !hidden.has(n))

for (const name of modules) {
  t.test(`doc/cmd/${name}.md carries the exact --help text of ${name}`, async t => {
    const { command } = await import(join(REPO, 'launcher', 'src', 'commands', `${name}.ts`))
    const doc = join(REPO, 'doc', 'cmd', `${name}.md`)
    t.ok(existsSync(doc), `${doc} exists`)
    if (!existsSync(doc)) return
    const text = readFileSync(doc, 'utf8')
    const m = /## Usage\n+```[a-z]*\n([\s\S]*?)```/.exec(text)
    t.ok(m, 'has a Usage block')
    t.equal(m?.[1]?.trimEnd(), String(command.usage).trimEnd())
    for (const part of ['## Description', '## Configuration', '## Example']) t.ok(text.includes(part), `has ${part}`)
  })
}

t.test('etc/enroot.conf is generated from the settings table', async t => {
  t.doesNotThrow(() => execFileSync(process.execPath, [join(REPO, 'scripts', 'gen-conf.mjs'), '--check'], { stdio: 'pipe' }))
})
