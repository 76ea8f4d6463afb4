import t from 'tap'
import { parseImageUri, defaultImportName, inferUser, canonicalUri } from '../../launcher/src/image/uri.js'

const hub = 'registry-1.docker.io'

t.test('parses the nine forms of the grammar table (spec §3.1)', async t => {
  const d = 'sha256:' + 'a'.repeat(64)
  const cases: Array<[string, object]> = [
    [`docker://u@nvcr.io/nvidia/cuda:12.0@${d}`, { user: 'u', registry: 'nvcr.io', repository: 'nvidia/cuda', tag: '12.0', digest: d, reference: d }],
    [`docker://nvcr.io/nvidia/cuda@${d}`, { registry: 'nvcr.io', repository: 'nvidia/cuda', tag: 'latest', digest: d, reference: d }],
    ['docker://nvcr.io/nvidia/cuda:12.0', { registry: 'nvcr.io', repository: 'nvidia/cuda', tag: '12.0', reference: '12.0' }],
    [`docker://ubuntu:24.04@${d}`, { registry: hub, repository: 'library/ubuntu', tag: '24.04', digest: d, reference: d }],
    [`docker://ubuntu@${d}`, { registry: hub, repository: 'library/ubuntu', tag: 'latest', digest: d, reference: d }],
    ['docker://ubuntu', { registry: hub, repository: 'library/ubuntu', tag: 'latest', reference: 'latest' }],
    [`docker://u@nvcr.io#nvidia/cuda:12.0@${d}`, { user: 'u', registry: 'nvcr.io', repository: 'nvidia/cuda', tag: '12.0', digest: d, reference: d }],
    [`docker://nvcr.io#nvidia/cuda@${d}`, { registry: 'nvcr.io', repository: 'nvidia/cuda', digest: d, reference: d }],
    ['docker://$oauthtoken@nvcr.io#nvidia/cuda', { user: '$oauthtoken', registry: 'nvcr.io', repository: 'nvidia/cuda', tag: 'latest' }]
  ]
  for (const [uri, want] of cases) t.match(parseImageUri(uri), want, uri)
})

t.test('a first component is a registry only with "." or ":"', async t => {
  t.match(parseImageUri('docker://nvidia/cuda:12'), { registry: hub, repository: 'nvidia/cuda', tag: '12' })
  t.match(parseImageUri('docker://localhost/foo'), { registry: hub, repository: 'localhost/foo' }, 'enroot quirk kept')
  t.match(parseImageUri('docker://localhost:5000/foo'), { registry: 'localhost:5000', repository: 'foo' })
  t.match(parseImageUri('docker://localhost#foo'), { registry: 'localhost', repository: 'foo' })
  t.match(parseImageUri('docker://127.0.0.1:5000/team/app:v1'), { registry: '127.0.0.1:5000', repository: 'team/app', tag: 'v1' })
})

t.test('Docker Hub aliases become registry-1.docker.io with library/', async t => {
  for (const uri of ['docker://docker.io/ubuntu:24.04', 'docker://docker.io#ubuntu:24.04', 'docker://index.docker.io/ubuntu:24.04', 'docker://registry-1.docker.io#ubuntu:24.04']) {
    t.match(parseImageUri(uri), { registry: hub, repository: 'library/ubuntu', tag: '24.04' }, uri)
  }
  t.match(parseImageUri('docker://docker.io/nvidia/cuda'), { registry: hub, repository: 'nvidia/cuda' })
})

t.test('a user may contain "@"; it ends at the last "@" before the first "/" or "#"', async t => {
  t.match(parseImageUri('docker://me@example.com@reg.io#img'), { user: 'me@example.com', registry: 'reg.io', repository: 'img' })
  t.match(parseImageUri('docker://me@reg.io:5000/a/b:c'), { user: 'me', registry: 'reg.io:5000', repository: 'a/b', tag: 'c' })
})

t.test('rejects bad references with enroot\'s message, other schemes as invalid arguments', async t => {
  for (const uri of ['docker://Ubuntu', 'docker://ubuntu:', 'docker://nvcr.io#', 'docker://', 'docker://a b', 'docker://ubuntu:t@g!']) {
    t.throws(() => parseImageUri(uri), { code: 'INVALID', message: `Invalid image reference: ${uri}` }, uri)
  }
  t.throws(() => parseImageUri('oras://x'), { code: 'INVALID', message: 'Invalid argument: oras://x' })
})

t.test('default import names (spec §2.4)', async t => {
  const d = 'sha256:' + 'b'.repeat(64)
  const table: Array<[string, string]> = [
    ['docker://nvcr.io#nvidia/cuda:12.0', 'nvidia+cuda+12.0.sqsh'],
    ['docker://ubuntu', 'ubuntu+latest.sqsh'],
    [`docker://ubuntu:24.04@${d}`, `ubuntu+${d}.sqsh`],
    ['docker://user@registry.example.com:5000/team/app:v1', 'team+app+v1.sqsh'],
    ['docker://nvidia/cuda:11', 'nvidia+cuda+11.sqsh'],
    ['docker://quay.io/library/x:1', 'library+x+1.sqsh']
  ]
  for (const [uri, name] of table) t.equal(defaultImportName(parseImageUri(uri)), name, uri)
})

t.test('infers the user from the first matching machine line, port ignored, host compared literally', async t => {
  const text = 'machine other.io login nope password x\nmachine nvcr.io login $oauthtoken password $(cat k)\nmachine nvcr.io login second password y\nmachine nvcrxio login dot password z\n'
  t.equal(inferUser('nvcr.io', text), '$oauthtoken')
  t.equal(inferUser('nvcr.io:443', text), '$oauthtoken')
  t.equal(inferUser('nvcr-io', text), undefined)
  t.match(parseImageUri('docker://nvcr.io#nvidia/cuda', { credentialsText: text }), { user: '$oauthtoken' })
  t.match(parseImageUri('docker://me@nvcr.io#nvidia/cuda', { credentialsText: text }), { user: 'me' }, 'explicit user wins')
  t.equal(parseImageUri('docker://ubuntu', { credentialsText: text }).user, undefined)
})

t.test('canonical provenance URI', async t => {
  t.equal(canonicalUri(parseImageUri('docker://ubuntu')), 'docker://registry-1.docker.io#library/ubuntu:latest')
})
