// Starting a squashfs image directly (spec §5.10): squashfuse + overlay with a tmpfs upper layer, no
// extraction; writes vanish; squashfuse lives exactly as long as the container.
import t from 'tap'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { userTmp } from '../helpers/env.js'
import { buildRootfs, squashRootfs, HAVE_MKSQUASHFS, HAVE_SQUASHFUSE } from '../helpers/rootfs.js'
import { requireFeature } from '../helpers/env.js'
import { makePlan, needRuntime, runPlan, userProcesses } from './harness.js'

t.test('an image starts without extraction, and its writes vanish at exit', async t => {
  if (!needRuntime(t)) return
  if (!requireFeature(t, 'squashfs tools', HAVE_MKSQUASHFS && HAVE_SQUASHFUSE, 'squashfs-tools and squashfuse')) return
  if (!requireFeature(t, '/dev/fuse', existsSync('/dev/fuse'))) return
  const base = userTmp(t)
  const image = squashRootfs(buildRootfs(join(base, 'rootfs'), { files: { 'etc/from-image': 'image\n' } }), join(base, 'image.sqsh'))
  const plan = (cmd: string[], writable: boolean) => makePlan(base, image, cmd, { rootfs: { kind: 'squashfs', image }, writable })
  const first = await runPlan(base, plan(['sh', '-c', 'cat /etc/from-image; echo new > /written; cat /written; grep -c fuse.squashfuse /proc/self/mountinfo; true'], true))
  t.equal(first.status, 0, first.stderr)
  t.equal(first.stdout, 'image\nnew\n0\n', 'the fuse lower layer is not visible after the pivot')
  const second = await runPlan(base, plan(['sh', '-c', 'test -e /written && echo still-there || echo gone; touch /ro 2>&1; true'], false))
  t.equal(second.status, 0, second.stderr)
  t.match(second.stdout, /^gone\n.*Read-only file system/)
  t.same(userProcesses(`squashfuse -f -o`).filter(l => l.includes(image)), [], 'squashfuse exits with the container')
})

t.test('a corrupt image fails with "Failed to mount"', async t => {
  if (!needRuntime(t)) return
  if (!requireFeature(t, 'squashfuse', HAVE_SQUASHFUSE)) return
  const base = userTmp(t)
  const image = join(base, 'bad.sqsh')
  ;(await import('node:fs')).writeFileSync(image, 'not a squashfs image')
  const r = await runPlan(base, makePlan(base, image, ['true'], { rootfs: { kind: 'squashfs', image } }))
  t.equal(r.status, 1)
  t.match(r.stderr, `Failed to mount: ${image}`)
})
