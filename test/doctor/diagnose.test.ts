import { diagnose, type Finding } from '../../lib/doctor';
import { healthyFacts as healthy } from '../helpers/doctor-facts';

const T = '/usr/lib/x86_64-linux-gnu';

const problems = (findings: Finding[]) => findings.filter((f) => f.status === 'problem');
const only = (findings: Finding[]): Finding => {
  const found = problems(findings);
  expect(found).toHaveLength(1);
  return found[0];
};

describe('diagnose', () => {
  test('a healthy machine has no problem and no warning; absent weights are information only', () => {
    const findings = diagnose(healthy());
    expect(findings.filter((f) => f.status === 'problem' || f.status === 'warn')).toEqual([]);
    expect(findings.find((f) => f.area === 'weights')).toMatchObject({ status: 'info', detail: expect.stringContaining('not downloaded: resnet18') });
    expect(findings.find((f) => f.area === 'CUDA')?.detail).toMatch(/NCCL not loaded \(not reported by this libtorch build\)/);
  });

  test('reference BLAS chosen by the alternatives link: the fix installs OpenBLAS and sets the alternative', () => {
    const facts = healthy();
    facts.blas = { ...facts.blas, kind: 'reference', file: `${T}/blas/libblas.so.3.11.0`, version: undefined, gflops: 3 };
    const p = only(diagnose(facts));
    expect(p).toMatchObject({ area: 'BLAS', detail: expect.stringContaining('reference BLAS') });
    expect(p.fix).toBe(`install OpenBLAS and make it the libblas.so.3 alternative (as root): apt-get install libopenblas0-pthread && update-alternatives --set libblas.so.3-x86_64-linux-gnu ${T}/openblas-pthread/libblas.so.3`);
  });

  test('reference BLAS put first by LD_LIBRARY_PATH or LD_PRELOAD: the fix names that variable', () => {
    const facts = healthy();
    facts.blas = { ...facts.blas, kind: 'reference', file: `${T}/blas/libblas.so.3.11.0` };
    facts.env = { LD_LIBRARY_PATH: `/opt/x:${T}/blas/` };
    expect(only(diagnose(facts)).fix).toBe(`remove ${T}/blas from LD_LIBRARY_PATH (it puts the reference libblas.so.3 before OpenBLAS)`);
    facts.env = { LD_PRELOAD: `${T}/blas/libblas.so.3` };
    facts.blas.reason = 'named in LD_PRELOAD';
    expect(only(diagnose(facts)).fix).toMatch(/out of LD_PRELOAD \(now '.*blas\/libblas\.so\.3'\)/);
  });

  test('an unidentified BLAS is a warning; OPENBLAS_NUM_THREADS=1 on several cores too', () => {
    const facts = healthy();
    facts.blas = { ...facts.blas, kind: 'unknown', file: '/usr/lib64/libblas.so.3' };
    expect(diagnose(facts).filter((f) => f.status === 'warn').map((f) => f.area)).toEqual(['BLAS']);
    const single = healthy();
    single.env = { OMP_NUM_THREADS: '4', OPENBLAS_NUM_THREADS: '1' };
    expect(diagnose(single).find((f) => f.status === 'warn')).toMatchObject({ detail: expect.stringContaining('OPENBLAS_NUM_THREADS=1'), fix: expect.stringContaining('unset OPENBLAS_NUM_THREADS') });
  });

  test('one intra-op thread on four cores, or more threads than the cgroup quota allows, is a problem', () => {
    const one = healthy();
    one.runtime!.threads = 1;
    expect(only(diagnose(one))).toMatchObject({ area: 'threads', fix: expect.stringContaining('threads: 4') });
    const over = healthy();
    over.cores = { online: 4, affinity: 4, cgroupLimit: 2, usable: 2 };
    expect(only(diagnose(over))).toMatchObject({ area: 'threads', detail: expect.stringContaining('cgroup quota 2'), fix: expect.stringContaining('setNumThreads(2)') });
    const configured = healthy();
    configured.config.threads = 8;
    expect(only(diagnose(configured)).detail).toBe('configs/base.yaml asks for threads: 8 but only 4 cores are usable');
  });

  test('no CUDA is fine, but a config that asks for it is a problem; a GPU behind a CPU-only libtorch is a warning', () => {
    const wants = healthy();
    wants.config.device = 'cuda:1';
    expect(only(diagnose(wants))).toMatchObject({ area: 'CUDA', detail: expect.stringContaining('asks for device cuda:1 but CUDA is not available') });
    const gpu = healthy();
    gpu.cuda.gpuDeviceFiles = ['/dev/nvidia0'];
    expect(diagnose(gpu).find((f) => f.status === 'warn')).toMatchObject({ area: 'CUDA', fix: expect.stringContaining('LIBTORCH=') });
    const cuda = healthy();
    Object.assign(cuda.runtime!, { cudaAvailable: true, cudaDeviceCount: 1, cudnnAvailable: true });
    cuda.cuda.nccl = '/opt/libtorch/lib/libnccl.so.2.14.3';
    cuda.cuda.cudnn = '/opt/libtorch/lib/libcudnn.so.8';
    expect(diagnose(cuda).find((f) => f.area === 'CUDA')).toMatchObject({ status: 'ok', detail: '1 device(s); cuDNN available; NCCL libnccl.so.2.14.3; libcudnn.so.8' });
  });

  test('an addon that does not load is a problem whose fix comes from the loader', () => {
    const facts = healthy();
    facts.runtime = undefined;
    facts.cpuCache = undefined;
    facts.addon = {
      file: undefined,
      error: 'Could not load the finetorch native addon. Tried:\n  /x/finetorch.node: libtorch_cpu.so.1.13: cannot open shared object file\n    fix: libtorch_cpu.so.1.13 not found: run scripts/setup.sh\nPossible solutions:',
    };
    const p = only(diagnose(facts));
    expect(p).toMatchObject({ area: 'libtorch', fix: 'libtorch_cpu.so.1.13 not found: run scripts/setup.sh' });
    expect(p.detail).toContain('cannot open shared object file');
  });

  test("distributed: c10d with its backends and DDP's Reducer is ok; a build without c10d is a warning that says to install libgloo-dev", () => {
    const facts = healthy();
    expect(diagnose(facts).find((f) => f.area === 'distributed')).toMatchObject({ status: 'ok', detail: "c10d with gloo; gradients by DDP's Reducer (all-reduce during backward)" });
    facts.distributed = { c10d: false, backends: [], gradientSync: null };
    const warning = diagnose(facts).find((f) => f.area === 'distributed');
    expect(warning).toMatchObject({ status: 'warn' });
    expect(warning!.fix).toMatch(/apt-get install libgloo-dev.*npm run build:native/);
  });

  test('convolutions: Winograd is ok where the build has it; a build without it is information with the fix', () => {
    const facts = healthy();
    expect(diagnose(facts).find((f) => f.area === 'convolutions')).toMatchObject({ status: 'ok' });
    facts.runtime!.winograd = { available: false, reason: 'this build of finetorch has no oneDNN Winograd: it needs ...' };
    const info = diagnose(facts).find((f) => f.area === 'convolutions');
    expect(info).toMatchObject({ status: 'info', detail: 'direct convolutions only: this build of finetorch has no oneDNN Winograd: it needs ...' });
    expect(info!.fix).toBe('apt-get install libdnnl-dev, then npm run build:native');
    facts.runtime!.winograd = { available: false, reason: 'oneDNN has no f32 Winograd convolution for this CPU (it needs AVX-512): ...' };
    expect(diagnose(facts).find((f) => f.area === 'convolutions')!.fix).toBeUndefined();
  });

  test('malloc and the CPU block cache turned off are warnings; sharp not loading and corrupt weights are problems', () => {
    const facts = healthy();
    facts.env = { FINETORCH_MALLOC_TUNING: '0', FINETORCH_CPU_CACHE: '0' };
    facts.cpuCache = { installed: false, cachedBytes: 0, limitBytes: 0, hits: 0 };
    expect(diagnose(facts).filter((f) => f.status === 'warn').map((f) => [f.area, f.fix])).toEqual([
      ['malloc', 'unset FINETORCH_MALLOC_TUNING'], ['CPU block cache', 'unset FINETORCH_CPU_CACHE'],
    ]);
    const broken = healthy();
    broken.sharp = { sharp: undefined, vips: undefined, error: "Cannot find module 'sharp'" };
    broken.weights.files = [{ arch: 'resnet18', file: 'resnet18-f37072fd.pth', present: true, bytes: 100, hashMatches: false }];
    expect(problems(diagnose(broken)).map((f) => f.area)).toEqual(['sharp', 'weights']);
    expect(problems(diagnose(broken))[1].fix).toBe('rm /root/.cache/torch/hub/checkpoints/resnet18-f37072fd.pth && finetorch weights download resnet18');
  });
});
