// enroot's command-line rules (spec §1.3), which scripts depend on: options come before positional
// arguments, parsing stops at the first non-option or at `--`, short options are not bundled,
// `-x VAL`, `--x VAL` and `--x=VAL` all work and need a non-empty value, unknown options are usage errors.
// A hand-written parser: yargs costs ~80 ms to import on this machine, which `enroot start` cannot afford.
import { UsageError } from './errors.js'

export interface OptionSpec {
  /** key in the parsed result */
  name: string
  long: string
  short?: string
  /** takes a value */
  value?: boolean
  /** may be repeated; values collect into an array */
  repeat?: boolean
}

export interface Parsed {
  opts: Record<string, string | boolean | string[]>
  rest: string[]
  help: boolean
}

export function parseArgs (argv: readonly string[], specs: readonly OptionSpec[], usage: string): Parsed {
  const opts: Parsed['opts'] = {}
  let i = 0
  let help = false
  const set = (spec: OptionSpec, v: string | boolean): void => {
    if (spec.repeat === true) {
      const cur = opts[spec.name]
      opts[spec.name] = [...(Array.isArray(cur) ? cur : []), String(v)]
    } else {
      opts[spec.name] = v
    }
  }
  for (; i < argv.length; i++) {
    const a = argv[i] as string
    if (a === '--') { i++; break }
    if (a === '-h' || a === '--help') { help = true; continue }
    if (!a.startsWith('-') || a === '-') break
    let spec: OptionSpec | undefined
    let inline: string | undefined
    if (a.startsWith('--')) {
      const eq = a.indexOf('=')
      const name = eq === -1 ? a.slice(2) : a.slice(2, eq)
      if (eq !== -1) inline = a.slice(eq + 1)
      spec = specs.find(s => s.long === name)
    } else {
      spec = a.length === 2 ? specs.find(s => s.short === a[1]) : undefined
    }
    if (spec === undefined) throw new UsageError(`Unknown option: ${a}`, usage)
    if (spec.value === true) {
      const v = inline ?? argv[++i]
      if (v === undefined || v === '') throw new UsageError(`Option requires a value: ${a}`, usage)
      set(spec, v)
    } else {
      if (inline !== undefined) throw new UsageError(`Option takes no value: ${a}`, usage)
      set(spec, true)
    }
  }
  return { opts, rest: argv.slice(i), help }
}

export const str = (p: Parsed, name: string): string | undefined => {
  const v = p.opts[name]
  return typeof v === 'string' ? v : undefined
}
export const bool = (p: Parsed, name: string): boolean => p.opts[name] === true
export const list = (p: Parsed, name: string): string[] => {
  const v = p.opts[name]
  return Array.isArray(v) ? v : []
}

/** The one operand of a command such as `create IMAGE`: enroot's errors for none (naming it) and for more. */
export function oneOperand (p: Parsed, what: string, usage: string): string {
  const [first, extra] = p.rest
  if (first === undefined) throw new UsageError(`Missing argument: ${what}`, usage)
  if (p.rest.length > 1) throw new UsageError(`Unexpected argument: ${extra ?? ''}`, usage)
  return first
}
