// hooks.d/extra/98-nvidia-cli.sh: the nvidia-container-cli alternative builds enroot's arguments.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { REPO } from '../../helpers/env.js'

const SCRIPT = join(REPO, 'hooks.d', 'extra', '98-nvidia-cli.sh')

function run (t: { teardown: (f: () => void) => void }, environ: string[], env: Record<string, string> = {}, withCli = true) {
  const dir = mkdtempSync(join(tmpdir(), 'enroot-nvcli-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const bin = join(dir, 'bin')
  mkdirSync(bin)
  if (withCli) {
    writeFileSync(join(bin, 'nvidia-container-cli'), '#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    chmodSync(join(bin, 'nvidia-container-cli'), 0o755)
  }
  writeFileSync(join(dir, 'environ'), environ.map(l => `${l}\n`).join(''))
  writeFileSync(join(dir, 'mounts'), '')
  const r = spawnSync('bash', [SCRIPT], {
    encoding: 'utf8',
    env: { PATH: `${bin}:/usr/bin:/bin`, ENROOT_ENVIRON: join(dir, 'environ'), ENROOT_MOUNTS: join(dir, 'mounts'), ENROOT_ROOTFS: '/rootfs', ...env }
  })
  return { ...r, mounts: readFileSync(join(dir, 'mounts'), 'utf8') }
}

t.test('arguments as enroot builds them: devices, capabilities, requirements, the rootfs last', async t => {
  const r = run(t, ['NVIDIA_VISIBLE_DEVICES=void', 'NVIDIA_VISIBLE_DEVICES=0,1', 'NVIDIA_DRIVER_CAPABILITIES=compute,utility', 'NVIDIA_REQUIRE_CUDA=cuda>=12.0 brand=tesla,driver>=535'])
  t.equal(r.status, 0, r.stderr)
  const args = r.stdout.trim().split('\n')
  t.same(args.slice(0, 3), ['--user', 'configure', '--no-cgroups'])
  t.match(args[3], /^--ldconfig=@\/.*ldconfig/)
  t.same(args.slice(4), ['--device=0,1', '--compute', '--utility', '--require=cuda>=12.0 brand=tesla,driver>=535', '/rootfs'])
  t.match(r.mounts, '/dev/gdrdrv /dev/gdrdrv none x-create=file,bind,ro')
})

t.test('the host environment wins, void and unset do nothing, none gives no --device', async t => {
  t.equal(run(t, ['NVIDIA_VISIBLE_DEVICES=all'], { NVIDIA_VISIBLE_DEVICES: 'void' }).stdout, '')
  t.equal(run(t, []).stdout, '')
  const none = run(t, ['NVIDIA_VISIBLE_DEVICES=none']).stdout
  t.notMatch(none, '--device')
  t.match(none, '--utility\n', 'the default capability')
})

t.test('errors: an unknown capability, a missing nvidia-container-cli', async t => {
  const bad = run(t, ['NVIDIA_VISIBLE_DEVICES=all', 'NVIDIA_DRIVER_CAPABILITIES=compute,ngx'])
  t.equal(bad.status, 1)
  t.match(bad.stderr, 'Unknown NVIDIA driver capability: ngx')
  const missing = run(t, ['NVIDIA_VISIBLE_DEVICES=all'], {}, false)
  t.equal(missing.status, 1)
  t.match(missing.stderr, 'Command not found: nvidia-container-cli, see https://github.com/NVIDIA/libnvidia-container')
})
