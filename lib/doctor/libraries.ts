// Which shared libraries this process really runs on, read from /proc/self/maps after the addon
// loaded: the libtorch the dynamic loader found, the BLAS its matrix products call, and the CUDA
// libraries. The maps name each file by its real path (symlinks resolved), so Debian's
// alternatives link /usr/lib/<triplet>/libblas.so.3 shows up as the BLAS it points to.
import * as path from 'path';

/** The distinct files of shared libraries in a maps text (`... inode /path/lib.so.1`), in order of first mapping. */
export function mappedLibraries(mapsText: string): string[] {
  const seen = new Set<string>();
  for (const line of mapsText.split('\n')) {
    // address perms offset dev inode path: the path is everything after the fifth field (it may hold spaces)
    const m = /^\S+\s+\S+\s+\S+\s+\S+\s+\d+\s+(\/.*)$/.exec(line.trimEnd());
    if (!m) continue;
    const file = m[1].replace(/ \(deleted\)$/, '');
    if (/\.so(\.|$)|\.node$/.test(path.posix.basename(file))) seen.add(file);
  }
  return [...seen];
}

/** The version a library's file name carries: libtorch_cpu.so.1.13.0 -> 1.13.0, libopenblasp-r0.3.21.so -> 0.3.21. */
export function versionFromFileName(file: string): string | undefined {
  const base = path.posix.basename(file);
  const openblas = /^libopenblas\w*-r(\d+(?:\.\d+)+)/.exec(base);
  if (openblas) return openblas[1];
  const suffix = /\.so\.(\d+(?:\.\d+)*)$/.exec(base);
  return suffix ? suffix[1] : undefined;
}

export interface LibtorchFiles {
  /** The folder libtorch_cpu was loaded from; undefined when no libtorch is mapped. */
  dir: string | undefined;
  /** libtorch*, libc10* files mapped (CUDA parts included). */
  files: string[];
  /** The version in libtorch_cpu's file name (Debian: libtorch_cpu.so.1.13.0); pytorch.org's has none. */
  fileVersion: string | undefined;
  /** More than one folder holds a mapped libtorch_cpu: two libtorch copies in one process. */
  otherDirs: string[];
}

export function libtorchFiles(libraries: string[]): LibtorchFiles {
  const files = libraries.filter((f) => /^lib(torch|c10)(_\w+)?\.so/.test(path.posix.basename(f)));
  const cpu = files.filter((f) => /^libtorch_cpu\.so/.test(path.posix.basename(f)));
  const dirs = [...new Set(cpu.map((f) => path.posix.dirname(f)))];
  return { dir: dirs[0], files, fileVersion: cpu[0] ? versionFromFileName(cpu[0]) : undefined, otherDirs: dirs.slice(1) };
}

export type BlasKind = 'openblas' | 'blis' | 'mkl' | 'atlas' | 'flexiblas' | 'reference' | 'unknown';

export const BLAS_NAMES: Readonly<Record<BlasKind, string>> = Object.freeze({
  openblas: 'OpenBLAS',
  blis: 'BLIS',
  mkl: 'Intel MKL',
  atlas: 'ATLAS',
  flexiblas: 'FlexiBLAS (its backend is not visible here)',
  reference: 'reference BLAS (Netlib)',
  unknown: 'an unidentified BLAS',
});

/** What BLAS a library file is, by its name and folder (Debian's alternatives keep each in its own folder); undefined: not a BLAS. */
export function classifyBlas(file: string): BlasKind | undefined {
  const base = path.posix.basename(file);
  const dir = path.posix.basename(path.posix.dirname(file));
  const genericBlas = /^libblas\.so/.test(base);
  if (/^libopenblas/.test(base) || (genericBlas && /^openblas/.test(dir))) return 'openblas';
  if (/^libblis/.test(base) || (genericBlas && /^blis/.test(dir))) return 'blis';
  if (/^libmkl_(rt|core|intel)/.test(base) || (genericBlas && /mkl/.test(dir))) return 'mkl';
  if (/^lib[st]?atlas/.test(base) || (genericBlas && /^atlas/.test(dir))) return 'atlas';
  if (/^libflexiblas/.test(base)) return 'flexiblas';
  if (genericBlas && dir === 'blas') return 'reference';
  if (genericBlas) return 'unknown';
  return undefined;
}

export interface BlasInUse {
  kind: BlasKind;
  /** The library file whose sgemm libtorch calls (undefined for MKL linked into libtorch). */
  file: string | undefined;
  version: string | undefined;
  /** How it was decided. */
  reason: string;
  /** Every BLAS library mapped, in use or not (liblapack's OpenBLAS may sit beside a reference libblas). */
  mapped: string[];
}

/**
 * The BLAS libtorch's sgemm calls. In order: a BLAS in LD_PRELOAD (its symbols win); the file
 * libtorch's `libblas.so.3` dependency resolved to (it comes before any BLAS that liblapack pulls
 * in, so its symbols are found first); MKL linked into libtorch (its parallel info says so); any
 * other BLAS mapped. `preloaded`: LD_PRELOAD's entries with symlinks resolved.
 */
export function blasInUse(libraries: string[], options: { preloaded?: string[]; parallelInfo?: string } = {}): BlasInUse {
  const mapped = libraries.filter((f) => classifyBlas(f) !== undefined);
  const versionOf = (kind: BlasKind, file: string | undefined): string | undefined => {
    if (kind !== 'openblas') return undefined;
    // Debian's openblas-pthread/libblas.so.3 is a shim over libopenblasp-r<version>.so
    const core = mapped.find((f) => /^libopenblas\w*-r\d/.test(path.posix.basename(f)));
    return versionFromFileName(core ?? file ?? '');
  };
  const found = (file: string, reason: string): BlasInUse => {
    const kind = classifyBlas(file) as BlasKind;
    return { kind, file, version: versionOf(kind, file), reason, mapped };
  };
  const preloaded = (options.preloaded ?? []).filter((p) => classifyBlas(p) !== undefined && mapped.includes(p));
  if (preloaded.length > 0) return found(preloaded[0], 'named in LD_PRELOAD');
  const generic = mapped.find((f) => /^libblas\.so/.test(path.posix.basename(f)));
  if (generic) return found(generic, "libtorch's libblas.so.3 dependency resolved to it");
  if (options.parallelInfo && /Intel\(R\) (Math Kernel Library|oneAPI Math Kernel Library) Version/.test(options.parallelInfo)) {
    return { kind: 'mkl', file: undefined, version: /Kernel Library Version ([\d.]+)/.exec(options.parallelInfo)?.[1], reason: 'linked into libtorch (its parallel info names MKL)', mapped };
  }
  if (mapped.length > 0) return found(mapped[0], 'the only BLAS library mapped');
  return { kind: 'unknown', file: undefined, version: undefined, reason: 'no BLAS library is mapped and libtorch does not report MKL', mapped };
}

export interface CudaLibraries {
  cudart: string | undefined;
  cudnn: string | undefined;
  nccl: string | undefined;
  cublas: string | undefined;
}

/** The CUDA runtime, cuDNN, NCCL and cuBLAS files mapped (a CPU-only libtorch maps none). */
export function cudaLibraries(libraries: string[]): CudaLibraries {
  const find = (re: RegExp) => libraries.find((f) => re.test(path.posix.basename(f)));
  return {
    cudart: find(/^libcudart[\w-]*\.so/),
    cudnn: find(/^libcudnn(\.so|_ops_infer|_cnn_infer|_graph)/),
    nccl: find(/^libnccl\.so/),
    cublas: find(/^libcublas[\w-]*\.so/),
  };
}

export type AllocatorKind = 'jemalloc' | 'tcmalloc' | 'mimalloc';

/** A replacement malloc mapped into the process (usually by LD_PRELOAD), else undefined (glibc's). */
export function replacementAllocator(libraries: string[]): { kind: AllocatorKind; file: string } | undefined {
  for (const file of libraries) {
    const m = /^lib(jemalloc|tcmalloc|mimalloc)/.exec(path.posix.basename(file));
    if (m) return { kind: m[1] as AllocatorKind, file };
  }
  return undefined;
}
