// Doctor facts for the diagnose and format tests: a fresh copy each call.
import type { DoctorFacts } from '../../lib/doctor';

const T = '/usr/lib/x86_64-linux-gnu';

/** A healthy 4-core Debian machine as gatherFacts() describes it; each test breaks one thing. */
export function healthyFacts(): DoctorFacts {
  return {
    node: 'v20.20.2',
    platform: 'linux-x64',
    env: {},
    addon: { file: '/work/main/build/Release/finetorch.node', error: undefined },
    runtime: {
      torchVersion: '1.13.0', cudaAvailable: false, cudaDeviceCount: 0, cudnnAvailable: false, mkldnnAvailable: true,
      parallelInfo: 'MKL not found\nIntel(R) MKL-DNN v2.6.3 (Git Hash N/A)\nATen parallel backend: OpenMP\n', threads: 4,
      threadPools: { settings: [{ name: 'GOMP_SPINCOUNT', value: '20000', source: 'finetorch' }], loadedEarlier: [] },
      winograd: { available: true, reason: '' },
    },
    libtorch: { dir: T, files: [`${T}/libtorch_cpu.so.1.13.0`], fileVersion: '1.13.0', otherDirs: [] },
    blas: { kind: 'openblas', file: `${T}/openblas-pthread/libblas.so.3`, version: '0.3.21', reason: "libtorch's libblas.so.3 dependency resolved to it", mapped: [], gflops: 100 },
    cpu: { model: 'AMD EPYC', flags: ['avx2', 'fma'], features: [{ name: 'avx2', present: true, use: '' }, { name: 'avx512f', present: false, use: '' }] },
    cores: { online: 4, affinity: 4, cgroupLimit: undefined, usable: 4 },
    cuda: { cudart: undefined, cudnn: undefined, nccl: undefined, cublas: undefined, gpuDeviceFiles: [] },
    allocator: undefined,
    cpuCache: { installed: true, cachedBytes: 0, limitBytes: 4 * 1024 ** 3, hits: 0 },
    distributed: { c10d: true, backends: ['gloo'], gradientSync: 'reducer' },
    sharp: { sharp: '0.35.5', vips: '8.18.7', error: undefined },
    weights: { dir: '/root/.cache/torch/hub/checkpoints', files: [{ arch: 'resnet18', file: 'resnet18-f37072fd.pth', present: false }], partial: [], other: [], verified: false },
    config: { file: 'configs/base.yaml', device: 'auto', threads: null, error: undefined },
  };
}
