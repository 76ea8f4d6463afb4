import t from 'tap'
import { substitute, formatEnv, mergeEnv, cliEnv, validateEnvArgs } from '../../launcher/src/pipeline/envfile.js'

t.test('only the braced ${VAR} form is substituted, undefined names become empty', async t => {
  t.equal(substitute('A=${HOME}/x B=$HOME C=${NOPE}end D=${1x} E=${_u9}', { HOME: '/h', _u9: 'ok' }), 'A=/h/x B=$HOME C=end D=${1x} E=ok')
})

t.test('envfmt keeps NAME= lines, drops comments, blanks, exports and ENROOT_ names, strips one quote pair', async t => {
  const text = [
    '  LEADING=ws',
    '# comment',
    '',
    'export FOO=bar',
    'ENROOT_ROOTFS=/evil',
    'ENROOTX=kept',
    'Q1="double quoted"',
    "Q2='single'",
    'Q3="mismatched\'   ',
    'Q4=""inner""',
    'NOQUOTE=a"b',
    '1BAD=x',
    'EMPTY='
  ].join('\n')
  t.same(formatEnv(text), ['LEADING=ws', 'ENROOTX=kept', 'Q1=double quoted', 'Q2=single', 'Q3=mismatched', 'Q4="inner"', 'NOQUOTE=a"b', 'EMPTY='])
})

t.test('later assignments win and take the later position', async t => {
  t.same(mergeEnv(['A=1', 'B=2'], ['A=3'], ['C=4', 'B=5']), ['A=3', 'C=4', 'B=5'])
})

t.test('-e KEY copies the host value, KEY=VAL is kept, bad names are Invalid argument', async t => {
  t.same(cliEnv(['X', 'Y=1=2', 'UNSET', 'Z='], { X: 'host' }), ['X=host', 'Y=1=2', 'UNSET=', 'Z='])
  for (const bad of ['1X', 'A-B=1', '=x', '', 'A B']) {
    t.throws(() => cliEnv([bad], {}), { code: 'INVALID', message: `Invalid argument: ${bad}` }, JSON.stringify(bad))
    t.throws(() => validateEnvArgs([bad]), { code: 'INVALID' })
  }
})
