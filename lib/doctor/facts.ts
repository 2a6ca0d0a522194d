// What `finetorch doctor` looks at, gathered once: the addon and the libraries it pulled in, the
// CPU, the cores, the environment variables that steer libtorch, OpenBLAS, OpenMP and malloc,
// the CPU block cache, sharp, the torch hub cache and the experiment configuration. Nothing here
// judges; lib/doctor/diagnose.ts does.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadedAddon, native, type ThreadPoolSettings } from '../../binding';
import { distributedSupport } from '../distributed/process-group';
import { hashFile } from '../download/fetch-file';
import { hubCacheDir, IMAGENET_WEIGHTS, hashPrefixFromName, type WeightsArch } from '../download/weights';
import { resolveConfig } from '../experiment/config';
import { cpuCacheInfo, runtimeInfo, type CpuCacheInfo, type RuntimeInfo } from '../runtime';
import { matmul, randn } from '../tensor';
import { cpuInfo } from '../utils/cpuinfo';
import { cgroupCpuLimit, cpuFeatures, type CpuFeature } from './cpu';
import {
  blasInUse, cudaLibraries, libtorchFiles, mappedLibraries, replacementAllocator, type AllocatorKind, type BlasInUse, type CudaLibraries, type LibtorchFiles,
} from './libraries';

/** Environment variables that change what libtorch, its thread pools, BLAS or malloc do; those set are recorded. */
export const WATCHED_ENV = Object.freeze([
  'LD_PRELOAD', 'LD_LIBRARY_PATH', 'LIBTORCH', 'OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'GOTO_NUM_THREADS', 'MKL_NUM_THREADS',
  'BLIS_NUM_THREADS', 'GOMP_SPINCOUNT', 'OPENBLAS_THREAD_TIMEOUT', 'OPENBLAS_CORETYPE', 'ATEN_CPU_CAPABILITY', 'MALLOC_ARENA_MAX',
  'MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_', 'MALLOC_TOP_PAD_', 'GLIBC_TUNABLES', 'FINETORCH_MALLOC_TUNING', 'FINETORCH_CPU_CACHE',
  'FINETORCH_CPU_CACHE_MB', 'CUDA_VISIBLE_DEVICES', 'TORCH_HOME', 'XDG_CACHE_HOME',
]);

export interface WeightsFileFact {
  arch: WeightsArch;
  file: string;
  present: boolean;
  bytes?: number;
  /** With verify: whether the sha256 starts with the prefix in the name. */
  hashMatches?: boolean;
}

export interface DoctorFacts {
  node: string;
  platform: string;
  /** The watched variables as they were before finetorch loaded libtorch (it fills two of them in). */
  env: Record<string, string>;
  /** foundBy: how the loader chose the libtorch (a prebuilt over LIBTORCH, a Python torch, the system), or the addon's own search. */
  addon: { file: string | undefined; error: string | undefined; foundBy?: string };
  runtime: (RuntimeInfo & { threads: number; threadPools: ThreadPoolSettings }) | undefined;
  libtorch: LibtorchFiles;
  blas: BlasInUse & { /** float32 512×512 matmul, best of a few, measured through libtorch. */ gflops: number | undefined };
  cpu: { model: string | undefined; flags: string[]; features: CpuFeature[] };
  cores: { online: number; affinity: number; cgroupLimit: number | undefined; usable: number };
  cuda: CudaLibraries & { gpuDeviceFiles: string[] };
  allocator: { kind: AllocatorKind; file: string } | undefined;
  cpuCache: CpuCacheInfo | undefined;
  /** What the addon was built with for distributed training (undefined when it did not load). */
  distributed: { c10d: boolean; backends: string[]; gradientSync: string | null } | undefined;
  sharp: { sharp: string | undefined; vips: string | undefined; error: string | undefined };
  weights: { dir: string; files: WeightsFileFact[]; partial: string[]; other: string[]; verified: boolean };
  config: { file: string; device: string | undefined; threads: number | null | undefined; error: string | undefined };
}

export interface GatherOptions {
  /** Hash the cached weights (sha256; seconds for VGG-16's 553 MB). */
  verify?: boolean;
  /** An experiment config (path, or name in configs/experiments) whose device and threads are checked; default configs/base.yaml. */
  config?: string;
  env?: NodeJS.ProcessEnv;
}

function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

function firstLines(message: string, count: number): string {
  return message.split('\n').slice(0, count).join('\n');
}

async function measureGflops(): Promise<number | undefined> {
  const n = 512;
  const a = randn([n, n]);
  const b = randn([n, n]);
  try {
    (await matmul(a, b)).dispose(); // warm-up: thread pools start, pages are touched
    let best = Infinity;
    const start = Date.now();
    for (let i = 0; i < 5 && (i < 2 || Date.now() - start < 1000); i++) {
      const t0 = process.hrtime.bigint();
      (await matmul(a, b)).dispose();
      best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
    }
    return (2 * n * n * n) / best / 1e9;
  } finally {
    a.dispose();
    b.dispose();
  }
}

async function weightsFacts(env: NodeJS.ProcessEnv, verify: boolean): Promise<DoctorFacts['weights']> {
  const dir = hubCacheDir(env);
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir);
  } catch {
    // no cache folder yet: nothing downloaded
  }
  const known = new Set(IMAGENET_WEIGHTS.map((w) => w.file));
  const files: WeightsFileFact[] = [];
  for (const entry of IMAGENET_WEIGHTS) {
    const stat = fs.statSync(path.join(dir, entry.file), { throwIfNoEntry: false });
    const fact: WeightsFileFact = { arch: entry.arch, file: entry.file, present: !!stat?.isFile() };
    if (stat?.isFile()) {
      fact.bytes = stat.size;
      const prefix = hashPrefixFromName(entry.file);
      if (verify && prefix) fact.hashMatches = (await hashFile(path.join(dir, entry.file), ['sha256'])).sha256.startsWith(prefix);
    }
    files.push(fact);
  }
  return {
    dir,
    files,
    partial: names.filter((n) => n.endsWith('.part') && known.has(n.slice(0, -'.part'.length))).sort(),
    other: names.filter((n) => !known.has(n) && !(n.endsWith('.part') && known.has(n.slice(0, -'.part'.length)))).sort(),
    verified: verify,
  };
}

function sharpFacts(): DoctorFacts['sharp'] {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const versions = (require('sharp') as { versions: Record<string, string> }).versions;
    return { sharp: versions.sharp, vips: versions.vips, error: undefined };
  } catch (error) {
    return { sharp: undefined, vips: undefined, error: firstLines((error as Error).message, 3) };
  }
}

function configFacts(config: string | undefined): DoctorFacts['config'] {
  const file = config ?? 'configs/base.yaml';
  try {
    const resolved = resolveConfig({ config });
    return { file, device: resolved.device, threads: resolved.threads, error: undefined };
  } catch (error) {
    return { file, device: undefined, threads: undefined, error: (error as Error).message };
  }
}

function foundBy(): string | undefined {
  const loaded = loadedAddon();
  if (!loaded) return undefined;
  if (!loaded.libtorch) return "the addon's own search (its rpath, then the system's library path)";
  return loaded.libtorch.source === 'LIBTORCH' ? 'LIBTORCH' : `the ${loaded.libtorch.source} (${loaded.libtorch.libDir})`;
}

/** Loads the addon (if it can), then looks at everything `finetorch doctor` reports. */
export async function gatherFacts(options: GatherOptions = {}): Promise<DoctorFacts> {
  const env = options.env ?? process.env;
  const watched: Record<string, string> = {};
  for (const name of WATCHED_ENV) if (env[name] !== undefined) watched[name] = env[name] as string;

  let runtime: DoctorFacts['runtime'];
  let loadError: string | undefined;
  try {
    native();
    runtime = runtimeInfo();
  } catch (error) {
    loadError = (error as Error).message;
  }
  // after the addon (so libtorch is mapped) and before sharp (whose libvips is no concern here)
  const libraries = mappedLibraries(readText('/proc/self/maps') ?? '');
  const preloaded = (env.LD_PRELOAD ?? '').split(/[\s:]+/).filter(Boolean).map((p) => {
    try {
      return fs.realpathSync(p);
    } catch {
      return p;
    }
  });
  const blas = blasInUse(libraries, { preloaded, parallelInfo: runtime?.parallelInfo });
  let gflops: number | undefined;
  if (runtime) {
    try {
      gflops = await measureGflops();
    } catch {
      gflops = undefined;
    }
  }

  const cpu = cpuInfo();
  const online = os.cpus().length;
  const affinity = os.availableParallelism();
  const cgroupLimit = cgroupCpuLimit(readText('/sys/fs/cgroup/cpu.max'));
  const gpuDeviceFiles = (() => {
    try {
      return fs.readdirSync('/dev').filter((n) => /^nvidia\d+$/.test(n)).map((n) => `/dev/${n}`);
    } catch {
      return [];
    }
  })();

  return {
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    env: watched,
    addon: { file: libraries.find((f) => f.endsWith('.node') && /finetorch/.test(path.basename(f))), error: loadError, foundBy: foundBy() },
    runtime,
    libtorch: libtorchFiles(libraries),
    blas: { ...blas, gflops },
    cpu: { ...cpu, features: cpuFeatures(cpu.flags) },
    cores: { online, affinity, cgroupLimit, usable: Math.min(affinity, cgroupLimit ?? Infinity) },
    cuda: { ...cudaLibraries(libraries), gpuDeviceFiles },
    allocator: replacementAllocator(libraries),
    cpuCache: runtime ? cpuCacheInfo() : undefined,
    distributed: runtime ? distributedSupport() : undefined,
    sharp: sharpFacts(),
    weights: await weightsFacts(env, options.verify ?? false),
    config: configFacts(options.config),
  };
}
