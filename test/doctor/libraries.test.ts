import * as fs from 'fs';
import {
  blasInUse, classifyBlas, cudaLibraries, libtorchFiles, mappedLibraries, replacementAllocator, versionFromFileName,
} from '../../lib/doctor';

/** /proc/self/maps lines as the kernel writes them: several mappings per file, anonymous ones, a path with a space. */
function maps(files: string[]): string {
  const lines = ['55d0c0000000-55d0c0021000 rw-p 00000000 00:00 0                          [heap]'];
  files.forEach((file, i) => {
    const start = (0x7f0000000000 + i * 0x10000).toString(16);
    const end = (0x7f0000000000 + i * 0x10000 + 0x1000).toString(16);
    lines.push(`${start}-${end} r--p 00000000 08:01 ${1000 + i}                      ${file}`);
    lines.push(`${start}-${end} r-xp 00001000 08:01 ${1000 + i}                      ${file}`);
  });
  lines.push('7ffd7a5e9000-7ffd7a60a000 rw-p 00000000 00:00 0                          [stack]', '');
  return lines.join('\n');
}

const T = '/usr/lib/x86_64-linux-gnu';
const DEBIAN_TORCH = [`${T}/libc10.so.1.13.0`, `${T}/libtorch_cpu.so.1.13.0`, `${T}/libtorch.so.1.13.0`, '/work/main/build/Release/finetorch.node'];
const OPENBLAS = [`${T}/openblas-pthread/libopenblasp-r0.3.21.so`, `${T}/openblas-pthread/liblapack.so.3`, `${T}/openblas-pthread/libblas.so.3`];

describe('mappedLibraries', () => {
  test('lists each shared library once, in order, without anonymous mappings; keeps spaces; drops "(deleted)"', () => {
    const text = maps([`${T}/libc.so.6`, '/opt/my libs/libtorch_cpu.so', `${T}/libc.so.6`, '/tmp/x/finetorch.node (deleted)', '/usr/bin/node', '/tmp/data.bin']);
    expect(mappedLibraries(text)).toEqual([`${T}/libc.so.6`, '/opt/my libs/libtorch_cpu.so', '/tmp/x/finetorch.node']);
  });

  test('reads this process\'s own maps', () => {
    // node itself is mapped, but is not a library; libc is
    expect(mappedLibraries(fs.readFileSync('/proc/self/maps', 'utf8')).some((f) => /\/libc\.so/.test(f))).toBe(true);
  });
});

describe('versionFromFileName', () => {
  test.each([
    ['/usr/lib/x86_64-linux-gnu/libtorch_cpu.so.1.13.0', '1.13.0'],
    ['/opt/libtorch/lib/libtorch_cpu.so', undefined],
    ['/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblasp-r0.3.21.so', '0.3.21'],
    ['/usr/local/cuda/lib64/libcudnn.so.8.9.2', '8.9.2'],
  ])('%s -> %s', (file, version) => expect(versionFromFileName(file)).toBe(version));
});

describe('libtorchFiles', () => {
  test("Debian's libtorch: folder and version from libtorch_cpu's name", () => {
    expect(libtorchFiles(mappedLibraries(maps([...DEBIAN_TORCH, ...OPENBLAS])))).toEqual({
      dir: T, files: DEBIAN_TORCH.slice(0, 3), fileVersion: '1.13.0', otherDirs: [],
    });
  });

  test("pytorch.org's libtorch has no version in its names; two copies are both named", () => {
    const files = ['/opt/libtorch/lib/libc10.so', '/opt/libtorch/lib/libtorch_cpu.so', '/opt/libtorch/lib/libtorch_cuda.so', `${T}/libtorch_cpu.so.1.13.0`];
    const found = libtorchFiles(files);
    expect(found.dir).toBe('/opt/libtorch/lib');
    expect(found.fileVersion).toBeUndefined();
    expect(found.otherDirs).toEqual([T]);
  });

  test('none mapped', () => expect(libtorchFiles([`${T}/libc.so.6`])).toEqual({ dir: undefined, files: [], fileVersion: undefined, otherDirs: [] }));
});

describe('classifyBlas', () => {
  test.each([
    [`${T}/openblas-pthread/libblas.so.3`, 'openblas'],
    [`${T}/openblas-openmp/libblas.so.3`, 'openblas'],
    [`${T}/libopenblas.so.0`, 'openblas'],
    [`${T}/blas/libblas.so.3.11.0`, 'reference'],
    [`${T}/blis-pthread/libblas.so.3`, 'blis'],
    [`${T}/libblis.so.4`, 'blis'],
    ['/opt/intel/mkl/lib/libmkl_rt.so.2', 'mkl'],
    [`${T}/atlas/libblas.so.3`, 'atlas'],
    ['/usr/lib64/libflexiblas.so.3', 'flexiblas'],
    ['/usr/lib64/libblas.so.3', 'unknown'],
    [`${T}/openblas-pthread/liblapack.so.3`, undefined],
    [`${T}/libc.so.6`, undefined],
  ])('%s is %s', (file, kind) => expect(classifyBlas(file)).toBe(kind));
});

describe('blasInUse', () => {
  test('OpenBLAS through the alternatives link: the shim, with the version of the library behind it', () => {
    const found = blasInUse(mappedLibraries(maps([...DEBIAN_TORCH, ...OPENBLAS])));
    expect(found).toMatchObject({ kind: 'openblas', file: `${T}/openblas-pthread/libblas.so.3`, version: '0.3.21' });
    expect(found.reason).toMatch(/libblas\.so\.3 dependency/);
  });

  test("reference BLAS as libblas.so.3 wins over the OpenBLAS that liblapack pulls in", () => {
    const files = [...DEBIAN_TORCH, `${T}/blas/libblas.so.3.11.0`, `${T}/openblas-pthread/libopenblasp-r0.3.21.so`, `${T}/openblas-pthread/liblapack.so.3`];
    const found = blasInUse(mappedLibraries(maps(files)));
    expect(found).toMatchObject({ kind: 'reference', file: `${T}/blas/libblas.so.3.11.0`, version: undefined });
    expect(found.mapped).toHaveLength(2);
  });

  test('a BLAS in LD_PRELOAD comes first', () => {
    const files = [`${T}/blas/libblas.so.3.11.0`, ...DEBIAN_TORCH, ...OPENBLAS];
    expect(blasInUse(files, { preloaded: [`${T}/blas/libblas.so.3.11.0`] })).toMatchObject({ kind: 'reference', reason: 'named in LD_PRELOAD' });
    // a preloaded library that is not a BLAS changes nothing
    expect(blasInUse(files, { preloaded: [`${T}/libjemalloc.so.2`] }).reason).toMatch(/dependency/);
  });

  test('MKL linked into libtorch is read from its parallel info', () => {
    const info = 'ATen/Parallel:\n\tat::get_num_threads() : 4\nIntel(R) oneAPI Math Kernel Library Version 2022.2-Product Build 20220804\n';
    expect(blasInUse(['/opt/libtorch/lib/libtorch_cpu.so'], { parallelInfo: info })).toMatchObject({ kind: 'mkl', file: undefined, version: '2022.2' });
    expect(blasInUse(['/opt/libtorch/lib/libtorch_cpu.so'], { parallelInfo: 'MKL not found\n' })).toMatchObject({ kind: 'unknown', file: undefined });
  });
});

describe('cudaLibraries and replacementAllocator', () => {
  test('name the CUDA runtime, cuDNN, NCCL, cuBLAS and a preloaded malloc', () => {
    const files = ['/opt/libtorch/lib/libcudart-e409450e.so.11.0', '/usr/lib/x86_64-linux-gnu/libcudnn.so.8.9.2', '/usr/lib/x86_64-linux-gnu/libnccl.so.2.18.3', '/opt/libtorch/lib/libcublas-3b81d170.so.11', `${T}/libjemalloc.so.2`];
    expect(cudaLibraries(files)).toEqual({ cudart: files[0], cudnn: files[1], nccl: files[2], cublas: files[3] });
    expect(replacementAllocator(files)).toEqual({ kind: 'jemalloc', file: files[4] });
    expect(cudaLibraries(DEBIAN_TORCH)).toEqual({ cudart: undefined, cudnn: undefined, nccl: undefined, cublas: undefined });
    expect(replacementAllocator(DEBIAN_TORCH)).toBeUndefined();
  });
});
