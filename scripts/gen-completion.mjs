#!/usr/bin/env node
// Generates completion/enroot.bash from the built CLI: the command list from GLOBAL_USAGE and, for each
// command, its option table and the positional arguments of its Usage line. With --check, fails when the
// file is out of date (like scripts/gen-conf.mjs), so that a new option cannot ship without completion.
// enroot scrapes `--help` at completion time instead; a static file costs no node start-up per <TAB>.
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const { GLOBAL_USAGE } = await import(join(root, 'dist', 'cli.js'))

// The public commands are the ones GLOBAL_USAGE lists (the hidden slurm-* commands are not).
const commands = [...GLOBAL_USAGE.split(' Commands:\n')[1].matchAll(/^ {3}([a-z]+)/gm)].map((m) => m[1])

// What the value of an option is, by the option's key. An option that takes a value and is missing here
// fails the generation: a new option needs a decision, not a silent default.
const VALUE_KINDS = { output: 'file', conf: 'file', rc: 'file', mount: 'file', env: 'env', arch: 'none', name: 'none', desc: 'none', target: 'file' }

// What a positional placeholder of a Usage line completes to; `...` repeats it, and past the last one
// nothing is offered. COMMAND and ARG run inside the container: file names, as bash would offer.
const POSITIONAL_KINDS = { NAME: 'names', IMAGE: 'images', 'NAME|IMAGE': 'names images', URI: 'uris', CONFIG: 'file', PID: 'pids', COMMAND: 'file', ARG: 'file' }

const q = (s) => `'${s}'`
let optionCases = ''
let valueCases = ''
let positionalCases = ''
let schemeCases = ''
for (const name of commands) {
  const { command } = await import(join(root, 'dist', 'commands', `${name}.js`))
  const opts = []
  for (const o of command.options) {
    opts.push(`--${o.long}`)
    if (o.short !== undefined) opts.push(`-${o.short}`)
    if (o.value !== true) continue
    const kind = VALUE_KINDS[o.name]
    if (kind === undefined) throw new Error(`${name} --${o.long}: add its value kind to VALUE_KINDS in scripts/gen-completion.mjs`)
    const forms = [`${name} --${o.long}`, ...(o.short !== undefined ? [`${name} -${o.short}`] : [])]
    valueCases += `        ${forms.map(q).join('|')}) echo ${kind} ;;\n`
  }
  // every command accepts -h/--help (launcher/src/util/args.ts)
  opts.push('--help', '-h')
  optionCases += `        ${name}) echo ${q(opts.join(' '))} ;;\n`

  const usageLine = command.usage.split('\n')[0]
  const words = usageLine.replace(/^Usage: enroot \S+/, '').replace(/\[options\]|\[--\]/g, '').split(/\s+/).filter((w) => w !== '')
  const kinds = words.map((w) => {
    const bare = w.replace(/^\[|\]$/g, '').replace(/\.\.\.$/, '')
    const kind = POSITIONAL_KINDS[bare]
    if (kind === undefined) throw new Error(`${name}: add the placeholder ${bare} to POSITIONAL_KINDS in scripts/gen-completion.mjs`)
    // URIs complete to the schemes this command's usage lists (digest takes docker:// only)
    return { kind: kind === 'uris' ? `uris:${name}` : kind, repeat: w.includes('...') }
  })
  if (kinds.length > 0) {
    const arms = kinds.map((k, i) => k.repeat ? `*) echo ${q(k.kind)} ;;` : `${i}) echo ${q(k.kind)} ;;`)
    positionalCases += `        ${name}) case $2 in ${arms.join(' ')} esac ;;\n`
  }
  const schemes = [...command.usage.matchAll(/^ +([a-z]+:\/\/)/gm)].map((m) => m[1]).sort()
  if (schemes.length > 0) schemeCases += `        ${name}) echo ${q(schemes.join(' '))} ;;\n`
}

const out = `# bash completion for enroot (enroot-ts): commands, every option of each command, container names from
# \`enroot list\`, squashfs images (.sqsh .sqfs .squashfs .sfs), running containers' PIDs for exec.
# Generated from the command modules by scripts/gen-completion.mjs: edit the modules, not this file.
# shellcheck shell=bash

_enroot_commands=${q(commands.join(' '))}

# _enroot_uri_schemes CMD: the URI schemes CMD accepts.
_enroot_uri_schemes() {
    case $1 in
${schemeCases}    esac
}

# _enroot_options CMD: the options CMD accepts.
_enroot_options() {
    case $1 in
${optionCases}    esac
}

# _enroot_value_kind CMD OPTION: what OPTION's value is (file, env, none); fails if it takes no value.
_enroot_value_kind() {
    case "$1 $2" in
${valueCases}        *) return 1 ;;
    esac
}

# _enroot_positional_kind CMD N: what the Nth (from 0) positional argument of CMD is; empty: none.
_enroot_positional_kind() {
    case $1 in
${positionalCases}    esac
}

# _enroot_reply KIND... CUR: append the candidates of each KIND that start with CUR to COMPREPLY.
_enroot_reply() {
    local cur=\${!#} kind f
    local -a found
    for kind in "\${@:1:$#-1}"; do
        case $kind in
            names)
                # The same enroot binary and configuration as the command being typed.
                mapfile -t found < <("$_enroot_bin" list 2> /dev/null)
                for f in "\${found[@]}"; do [[ $f == "$cur"* ]] && COMPREPLY+=("$f"); done ;;
            pids)
                # \`list --fancy\`: the PID column; a container's further processes are on indented lines.
                mapfile -t found < <("$_enroot_bin" list --fancy 2> /dev/null | awk 'NR > 1 && /^ / { print $1; next } NR > 1 && $2 ~ /^[0-9]+$/ { print $2 }')
                for f in "\${found[@]}"; do [[ $f == "$cur"* ]] && COMPREPLY+=("$f"); done ;;
            images)
                # Directories too, so that <TAB> can walk to an image.
                compopt -o filenames 2> /dev/null
                mapfile -t found < <(compgen -f -- "$cur")
                for f in "\${found[@]}"; do
                    [[ -d $f || $f == *.sqsh || $f == *.sqfs || $f == *.squashfs || $f == *.sfs ]] && COMPREPLY+=("$f")
                done ;;
            uris:*)
                compopt -o nospace 2> /dev/null
                mapfile -t found < <(compgen -W "$(_enroot_uri_schemes "\${kind#uris:}")" -- "$cur")
                COMPREPLY+=("\${found[@]}") ;;
            env)
                mapfile -t found < <(compgen -e -- "$cur")
                COMPREPLY+=("\${found[@]}") ;;
            file)
                compopt -o filenames 2> /dev/null
                mapfile -t found < <(compgen -f -- "$cur")
                COMPREPLY+=("\${found[@]}") ;;
        esac
    done
}

_enroot() {
    COMPREPLY=()
    local -a words=()
    local cword=0 j w
    # Bash splits --opt=value at '=' (COMP_WORDBREAKS); join the pieces back so that the words below are
    # the ones the parser sees.
    for (( j = 0; j < \${#COMP_WORDS[@]}; j++ )); do
        w=\${COMP_WORDS[j]}
        if (( j > 1 )) && [[ $w == = || \${words[-1]} == *= ]]; then
            words[-1]+=$w
        else
            words+=("$w")
        fi
        (( j == COMP_CWORD )) && cword=$(( \${#words[@]} - 1 ))
    done
    local cur=\${words[cword]} cmd=\${words[1]-} kind npos=0 positional= i
    local _enroot_bin=\${words[0]/#\~/$HOME}

    if (( cword == 1 )); then
        if [[ $cur == -* ]]; then
            mapfile -t COMPREPLY < <(compgen -W '--help -h' -- "$cur")
        else
            mapfile -t COMPREPLY < <(compgen -W "$_enroot_commands" -- "$cur")
        fi
        return 0
    fi
    [[ " $_enroot_commands " == *" $cmd "* ]] || return 0

    # Walk the words before the cursor as launcher/src/util/args.ts does: options end at \`--\` or at the
    # first word that is not an option; an option that takes a value consumes the next word.
    for (( i = 2; i < cword; i++ )); do
        w=\${words[i]}
        if [[ -n $positional ]]; then
            (( npos++ ))
            continue
        fi
        case $w in
            --) positional=1 ;;
            --*=*) ;;
            -?*)
                if kind=$(_enroot_value_kind "$cmd" "$w"); then
                    if (( i + 1 == cword )); then
                        _enroot_reply $kind "$cur"
                        return 0
                    fi
                    (( i++ ))
                fi ;;
            *) positional=1; npos=1 ;;
        esac
    done

    if [[ -z $positional && $cur == --*=* ]]; then
        # the replaced word is only what follows '=' (bash split there)
        kind=$(_enroot_value_kind "$cmd" "\${cur%%=*}") && _enroot_reply $kind "\${cur#*=}"
        # where '=' does not split words, the reply replaces the whole --opt=value word
        [[ $COMP_WORDBREAKS == *=* ]] || COMPREPLY=("\${COMPREPLY[@]/#/\${cur%%=*}=}")
        return 0
    fi
    if [[ -z $positional && $cur == -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$(_enroot_options "$cmd")" -- "$cur")
        return 0
    fi
    kind=$(_enroot_positional_kind "$cmd" "$npos")
    _enroot_reply \${kind:-none} "$cur"
    return 0
}

complete -F _enroot enroot
`

const target = join(root, 'completion', 'enroot.bash')
if (process.argv.includes('--check')) {
  let cur = ''
  try { cur = readFileSync(target, 'utf8') } catch {}
  if (cur !== out) { console.error('completion/enroot.bash is out of date: run node scripts/gen-completion.mjs'); process.exit(1) }
} else {
  writeFileSync(target, out)
}
