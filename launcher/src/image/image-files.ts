// The image configuration becomes four files of enroot's config layer (spec §4): /etc/fstab,
// /etc/environment, /etc/rc, /etc/rc.local, plus the WorkingDir directory. Pure data in, data out.
//
// Where enroot writes image values verbatim, a hostile image could inject text; here:
// - /etc/rc: every word is single-quoted (shell-quote.ts); label keys, label values and the provenance
//   URI are comments, so their newlines become spaces (enroot does it for label values only).
// - /etc/environment is one `KEY=VALUE` per line with no escaping, so a newline in an Env entry would
//   start a second variable: it becomes a space (like label values), keeping the variable.
// - /etc/fstab fields are separated by blanks: a space, tab, newline or backslash in a volume path is
//   written as the fstab octal escape (\040, \011, \012, \134), as getmntent(3) reads it.
// Modes: all files 0644 (enroot writes them under umask 077 and they are sourced or read, never
// executed; 0644 keeps them readable when the image is started directly by a non-root user).
import type { ExtraFile, ImageConfig } from './types.js'
import { shellQuoteAll, shellQuote } from './shell-quote.js'

const oneLine = (s: string): string => s.replace(/[\n\0]/g, ' ')

const fstabEscape = (s: string): string => s.replace(/[ \t\n\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`)

const strings = (v: unknown): string[] => Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []

export const RC_LOCAL = '# This file is sourced by /etc/rc when the container starts.\n' +
  '# It can be used to manipulate the entrypoint or the command of the container.\n'

export function fstabText (config: ImageConfig): string {
  const volumes = config.config?.Volumes ?? {}
  return Object.keys(volumes)
    .map(v => `\${ENROOT_ROOTFS}${fstabEscape(v)} ${fstabEscape(v)} none x-create=dir,bind,rw,nosuid,nodev\n`)
    .join('')
}

export function environmentText (config: ImageConfig): string {
  return strings(config.config?.Env).map(e => `${oneLine(e)}\n`).join('')
}

export function rcText (config: ImageConfig, provenance: string): string {
  const c = config.config ?? {}
  const entrypoint = strings(c.Entrypoint)
  let cmd = strings(c.Cmd)
  if (entrypoint.length === 0 && cmd.length === 0) cmd = ['/bin/sh']
  const workdir = typeof c.WorkingDir === 'string' && c.WorkingDir !== '' ? c.WorkingDir : '/'
  const labels = Object.entries(c.Labels ?? {}).map(([k, v]) => `# ${oneLine(k)} ${oneLine(String(v))}\n`).join('')
  const ep = shellQuoteAll(entrypoint)
  const dir = shellQuote(workdir)
  // Same layout as enroot's heredoc, including its spacing when ENTRYPOINT or CMD is empty.
  return `# enroot-provenance: ${oneLine(provenance)}\n${labels}\n` +
    `mkdir -p ${dir} 2> /dev/null\n` +
    `cd ${dir} && unset OLDPWD || exit 1\n` +
    '\n' +
    'if [ -s /etc/rc.local ]; then\n' +
    '    . /etc/rc.local\n' +
    'fi\n' +
    '\n' +
    'if [ $# -gt 0 ]; then\n' +
    `    exec ${ep} "$@"\n` +
    'else\n' +
    `    exec ${ep} ${shellQuoteAll(cmd)}\n` +
    'fi\n'
}

/** The config layer's files. provenance: `docker://<registry>#<image>:<ref>` or the dockerd/podman URI. */
export function imageFiles (config: ImageConfig, provenance: string): ExtraFile[] {
  const files: ExtraFile[] = [
    { path: '/etc/fstab', content: fstabText(config), mode: 0o644 },
    { path: '/etc/environment', content: environmentText(config), mode: 0o644 },
    { path: '/etc/rc', content: rcText(config, provenance), mode: 0o644 },
    { path: '/etc/rc.local', content: RC_LOCAL, mode: 0o644 }
  ]
  // enroot creates WorkingDir at import; a path that is not plain and absolute is left to rc's mkdir -p.
  const wd = config.config?.WorkingDir
  if (typeof wd === 'string' && wd.startsWith('/') && !wd.includes('\0') && !wd.split('/').includes('..') && wd.replace(/[/.]/g, '') !== '') {
    files.push({ path: wd, content: '', mode: 0o755, kind: 'directory' })
  }
  return files
}
