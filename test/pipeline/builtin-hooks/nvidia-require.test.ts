import t from 'tap'
import { parseRequirement, unmetTerm, checkRequirements, compareVersions, cudaForDriver, brandOf } from '../../../launcher/src/pipeline/builtin-hooks/nvidia-require.js'
import { parseCapabilities, libraryNames, binaryNames, controlDevices } from '../../../launcher/src/pipeline/builtin-hooks/nvidia-caps.js'

const facts = { driver: '535.104.05', cuda: '12.2', gpus: [{ brand: 'tesla', arch: '8.0' }] }

t.test('requirements: space-separated terms are ANDed, comma-separated constraints ORed', async t => {
  t.same(parseRequirement('cuda>=12.0 brand=tesla,driver>=535'), [
    [{ key: 'cuda', op: '>=', value: '12.0' }],
    [{ key: 'brand', op: '=', value: 'tesla' }, { key: 'driver', op: '>=', value: '535' }]
  ])
  t.equal(unmetTerm(parseRequirement('cuda>=12.0 brand=tesla,driver>=535'), facts), undefined)
  t.equal(unmetTerm(parseRequirement('cuda>=12.0 brand=geforce,driver>=535'), facts), undefined, 'one OR member is enough')
  t.same(unmetTerm(parseRequirement('cuda>=12.0 brand=geforce,driver>=545'), facts), [{ key: 'brand', op: '=', value: 'geforce' }, { key: 'driver', op: '>=', value: '545' }])
  t.same(unmetTerm(parseRequirement('cuda>=12.4'), facts), [{ key: 'cuda', op: '>=', value: '12.4' }])
})

t.test('a CUDA image requirement with its brand ranges holds on a matching driver', async t => {
  const cuda122 = 'cuda>=12.2 brand=tesla,driver>=470,driver<471 brand=unknown,driver>=470,driver<471 brand=nvidia,driver>=470,driver<471'
  t.equal(unmetTerm(parseRequirement(cuda122), facts), undefined)
})

t.test('operators and version comparison (12 = 12.0, 535.104.05 > 535)', async t => {
  t.equal(compareVersions('12', '12.0'), 0)
  t.ok(compareVersions('535.104.05', '535') > 0)
  t.ok(compareVersions('12.10', '12.9') > 0)
  for (const [expr, ok] of [['driver<536', true], ['driver<=535.104.05', true], ['driver>535.104.05', false], ['driver!=535.104.05', false], ['driver=535.104.05', true], ['arch>=9.0', false], ['arch>=7.0', true]] as const) {
    t.equal(unmetTerm(parseRequirement(expr), facts) === undefined, ok, expr)
  }
})

t.test('arch and brand hold for every selected GPU, and trivially without GPUs', async t => {
  const two = { ...facts, gpus: [{ brand: 'tesla', arch: '8.0' }, { brand: 'tesla', arch: '7.0' }] }
  t.ok(unmetTerm(parseRequirement('arch>=8.0'), two) !== undefined)
  t.equal(unmetTerm(parseRequirement('arch>=8.0 brand=geforce'), { ...facts, gpus: [] }), undefined)
})

t.test('an unmet requirement fails with the variable, the term and the driver, and a hint', async t => {
  t.throws(() => checkRequirements({ NVIDIA_REQUIRE_CUDA: 'cuda>=12.4 brand=tesla,driver>=535' }, facts), {
    code: 'HOOK',
    message: 'Unmet NVIDIA requirement NVIDIA_REQUIRE_CUDA: cuda>=12.4 (driver 535.104.05, CUDA 12.2, GPUs: tesla sm 8.0)',
    hint: /NVIDIA_DISABLE_REQUIRE=1/
  })
  t.doesNotThrow(() => checkRequirements({ NVIDIA_REQUIRE_CUDA: 'cuda>=12.4', NVIDIA_DISABLE_REQUIRE: '1' }, facts))
  t.throws(() => checkRequirements({ NVIDIA_REQUIRE_X: 'memory>=8' }, facts), { message: 'Invalid NVIDIA requirement: memory>=8' })
  t.throws(() => checkRequirements({ NVIDIA_REQUIRE_CUDA: 'cuda>=' }, facts), { message: 'Invalid NVIDIA requirement: cuda>=' }, 'not "cuda > ="')
})

t.test('CUDA version of a driver branch; newer drivers are flagged so nvidia-smi is asked only if needed', async t => {
  t.same(cudaForDriver('535.104.05'), { cuda: '12.2', latest: false })
  t.same(cudaForDriver('550.54.15'), { cuda: '12.4', latest: false })
  t.same(cudaForDriver('470.82.01'), { cuda: '11.4', latest: false })
  t.same(cudaForDriver('999.1'), { cuda: '13.0', latest: true })
  t.equal(cudaForDriver('390.1'), undefined)
})

t.test('brand from the model name', async t => {
  t.equal(brandOf('Tesla V100-SXM2-16GB'), 'tesla')
  t.equal(brandOf('NVIDIA H100 80GB HBM3'), 'nvidia')
  t.equal(brandOf('NVIDIA GeForce RTX 4090'), 'geforcertx')
  t.equal(brandOf('Quadro RTX 8000'), 'quadrortx')
  t.equal(brandOf('NVIDIA RTX A6000'), 'nvidiartx')
})

t.test('capabilities: default utility, all, unknown fails as enroot says', async t => {
  t.same([...parseCapabilities(undefined)], ['utility'])
  t.same([...parseCapabilities('')], ['utility'])
  t.same([...parseCapabilities('compute,utility')], ['compute', 'utility'])
  t.same([...parseCapabilities('all')].sort(), ['compat32', 'compute', 'display', 'graphics', 'ngx', 'utility', 'video'])
  t.throws(() => parseCapabilities('compute,gpu'), { code: 'HOOK', message: 'Unknown NVIDIA driver capability: gpu' })
})

t.test('capabilities → libraries, binaries and control devices', async t => {
  t.same(libraryNames(parseCapabilities('utility')), ['libnvidia-ml', 'libnvidia-cfg', 'libnvidia-nscq'])
  const compute = libraryNames(parseCapabilities('compute'))
  t.ok(compute.includes('libcuda') && compute.includes('libnvidia-ptxjitcompiler') && !compute.includes('libnvidia-ml'))
  const video = libraryNames(parseCapabilities('video'))
  t.ok(video.includes('libcuda') && video.includes('libnvcuvid'), 'video brings the compute libraries')
  t.ok(libraryNames(parseCapabilities('display')).includes('libGLX_nvidia'), 'display brings the graphics libraries')
  t.same(libraryNames(parseCapabilities('ngx')), ['libnvidia-ngx'])
  t.same(binaryNames(parseCapabilities('compute,utility')), ['nvidia-smi', 'nvidia-debugdump', 'nvidia-persistenced', 'nv-fabricmanager', 'nvidia-cuda-mps-control', 'nvidia-cuda-mps-server'])
  t.same(controlDevices(parseCapabilities('utility')), ['nvidiactl'])
  t.same(controlDevices(parseCapabilities('compute,display')), ['nvidiactl', 'nvidia-uvm', 'nvidia-uvm-tools', 'nvidia-modeset'])
})
