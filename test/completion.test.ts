// Bash completion (spec §2.14): completion/enroot.bash is generated from the command modules and
// completes commands, every option of each command, container names from `enroot list`, squashfs images
// and option values. Each case sources the file in a plain bash, sets COMP_WORDS/COMP_CWORD as readline
// would, calls the completion function and reads COMPREPLY.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { REPO, ENROOT, enrootEnv, runAsUser, userTmp } from './helpers/env.js'

const COMPLETION = join(REPO, 'completion', 'enroot.bash')

/** COMPREPLY for each command line (the last word is the one being completed), sorted. */
async function complete (lines: string[][], env: Record<string, string>, cwd: string): Promise<string[][]> {
  const quote = (w: string): string => `'${w.replace(/'/g, "'\\''")}'`
  let script = `source ${quote(COMPLETION)}\n`
  for (const words of lines) {
    script += `COMP_WORDS=(${words.map(quote).join(' ')}); COMP_CWORD=${words.length - 1}; COMPREPLY=(); _enroot\n`
    // (printf with no arguments would still print one empty line)
    script += 'printf "%s\\n" "${#COMPREPLY[@]}"; for w in "${COMPREPLY[@]}"; do printf "%s\\n" "$w"; done\n'
  }
  const r = await runAsUser('bash', ['--norc', '--noprofile', '-c', script], { env, cwd })
  if (r.status !== 0) throw new Error(`bash failed: ${r.stderr}`)
  const out = r.stdout.split('\n')
  const replies: string[][] = []
  for (let i = 0; replies.length < lines.length; i++) {
    const n = Number(out[i])
    replies.push(out.slice(i + 1, i + 1 + n).sort())
    i += n
  }
  return replies
}

t.test('completion/enroot.bash is generated from the command modules', async t => {
  t.doesNotThrow(() => execFileSync(process.execPath, [join(REPO, 'scripts', 'gen-completion.mjs'), '--check'], { stdio: 'pipe' }))
})

t.test('completes commands, each command\'s options, names, images and option values', async t => {
  const dir = userTmp(t)
  const env = enrootEnv(dir)
  for (const name of ['alpine', 'alpha-2', 'ubuntu']) mkdirSync(join(env.ENROOT_DATA_PATH as string, name))
  const work = join(dir, 'work')
  mkdirSync(join(work, 'images'), { recursive: true })
  for (const f of ['a.sqsh', 'b.squashfs', 'c.sqfs', 'd.sfs', 'notes.txt', 'job.batch']) writeFileSync(join(work, f), '')
  execFileSync('chown', ['-R', `${env.USER}:`, work])

  const cases: Array<[string[], string[]]> = [
    [['enroot', ''], ['batch', 'bundle', 'create', 'digest', 'exec', 'export', 'import', 'info', 'list', 'load', 'remove', 'start', 'version']],
    [['enroot', 'st'], ['start']],
    [['enroot', 'import', '--'], ['--arch', '--help', '--output']],
    [['enroot', 'import', '-'], ['--arch', '--help', '--output', '-a', '-h', '-o']],
    [['enroot', 'start', '--r'], ['--rc', '--root', '--rw']],
    [['enroot', 'remove', '-'], ['--force', '--help', '-f', '-h']],
    [['enroot', 'list', '--'], ['--fancy', '--help']],
    // names from `enroot list` (the data directory of this environment), image files and directories
    [['enroot', 'start', ''], ['a.sqsh', 'alpha-2', 'alpine', 'b.squashfs', 'c.sqfs', 'd.sfs', 'images', 'ubuntu']],
    [['enroot', 'start', '--rw', '-e', 'X', '=', '1', 'al'], ['alpha-2', 'alpine']],
    [['enroot', 'create', ''], ['a.sqsh', 'b.squashfs', 'c.sqfs', 'd.sfs', 'images']],
    [['enroot', 'export', 'u'], ['ubuntu']],
    [['enroot', 'remove', 'alpine', 'a'], ['alpha-2', 'alpine']],
    // after the NAME of export there is nothing left to complete; options end at the first positional
    [['enroot', 'export', 'ubuntu', ''], []],
    [['enroot', 'start', 'ubuntu', '--'], []],
    [['enroot', 'start', '--', '-'], []],
    // option values: a file for --output and --conf, nothing for --arch; bash splits --opt=value at '='
    [['enroot', 'import', '-o', 'no'], ['notes.txt']],
    [['enroot', 'import', '--output', '=', 'no'], ['notes.txt']],
    [['enroot', 'start', '-c', 'job'], ['job.batch']],
    [['enroot', 'import', '-a', ''], []],
    [['enroot', 'batch', 'j'], ['job.batch']],
    [['enroot', 'import', ''], ['docker://', 'dockerd://', 'podman://']],
    [['enroot', 'digest', 'do'], ['docker://']],
    [['enroot', 'nosuchcommand', ''], []]
  ]
  // COMP_WORDS[0] is the enroot being typed: the checkout's, with this environment's configuration
  const lines = cases.map(([words]) => [ENROOT, ...words.slice(1)])
  const got = await complete(lines, env, work)
  cases.forEach(([words, want], i) => t.same(got[i], want, words.map(w => w === '' ? "''" : w).join(' ')))
})
