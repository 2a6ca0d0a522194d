// What libtorch this process runs on, and the knobs that apply to the whole process.
import { native, threadPoolSettings, type RuntimeInfo, type ThreadPoolSettings } from '../binding';
import { Tensor, validateDevice } from './tensor';
import { boolean, integerInRange, knownKeys, nonNegativeInteger, plainObject } from './utils/validate';

export type { RuntimeInfo, ThreadPoolSettings } from '../binding';

/**
 * The libtorch this process runs on, its intra-op threads, and the thread pools' spin settings
 * in force (see binding/thread-pools.ts: finetorch's defaults or the user's own values).
 */
export function runtimeInfo(): RuntimeInfo & { threads: number; threadPools: ThreadPoolSettings } {
  return { ...native().info(), threads: native().getNumThreads(), threadPools: threadPoolSettings() };
}

/** Intra-op threads used by native work (default: all cores). */
export function setNumThreads(threads: number): void {
  native().setNumThreads(integerInRange('threads', threads, 1, 1024));
}

export function getNumThreads(): number {
  return native().getNumThreads();
}

/** Seeds libtorch's CPU and CUDA generators, like torch.manual_seed. */
export function manualSeed(seed: number): void {
  native().manualSeed(nonNegativeInteger('seed', seed));
}

/** The libtorch CPU generator's state (dropout, random init), as a uint8 tensor. */
export function getRngState(): Tensor {
  return new Tensor(native().getRngState());
}

export function setRngState(state: Tensor): void {
  native().setRngState(state.native);
}

/** 'auto' becomes 'cuda' when libtorch sees a GPU, else 'cpu'; explicit devices are checked for availability. */
export function resolveDevice(device: string = 'auto'): string {
  validateDevice(device, true);
  const info = native().info();
  if (device === 'auto') return info.cudaAvailable ? 'cuda' : 'cpu';
  if (device.startsWith('cuda')) {
    if (!info.cudaAvailable) {
      throw new Error(
        `device '${device}' requested but CUDA is not available: this finetorch build uses libtorch ${info.torchVersion} ` +
          'without CUDA, or no GPU is visible (build against a CUDA libtorch with LIBTORCH=... npm run build:native, or use device cpu)',
      );
    }
    const index = device.includes(':') ? Number(device.split(':')[1]) : 0;
    if (index >= info.cudaDeviceCount) throw new Error(`device '${device}' requested but only ${info.cudaDeviceCount} CUDA device(s) are visible`);
  }
  return device;
}

/** cuDNN benchmark mode: the fastest convolution algorithm per input shape is found once and kept. */
export function setCudnnBenchmark(flag: boolean): void {
  native().setCudnnBenchmark(boolean('flag', flag));
}

/** Which float32 GPU work may use TensorFloat-32 (Ampere and later): cuDNN convolutions and cuBLAS matmuls. */
export interface TF32Flags {
  conv: boolean;
  matmul: boolean;
}

/**
 * Allows or forbids TF32 (like torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32;
 * PyTorch's defaults: convolutions on, matmuls off). Off gives exact float32, e.g. to compare with the CPU.
 */
export function setAllowTF32(flags: Partial<TF32Flags>): void {
  knownKeys('TF32 flags', plainObject('TF32 flags', flags), ['conv', 'matmul']);
  const clean: Partial<TF32Flags> = {};
  if (flags.conv !== undefined) clean.conv = boolean('conv', flags.conv);
  if (flags.matmul !== undefined) clean.matmul = boolean('matmul', flags.matmul);
  native().setAllowTF32(clean);
}

export function allowTF32(): TF32Flags {
  return native().allowTF32();
}

/**
 * The CPU block cache: libtorch's CPU allocator keeps freed blocks of 1 MiB and more for reuse, so
 * a training loop stops page-faulting its activations in every step (the CPU twin of PyTorch's
 * CUDA caching allocator). Up to a quarter of physical memory (FINETORCH_CPU_CACHE_MB) is kept;
 * FINETORCH_CPU_CACHE=0 at start-up leaves libtorch's allocator alone. Model.dispose() empties it.
 */
export interface CpuCacheInfo {
  installed: boolean;
  cachedBytes: number;
  limitBytes: number;
  /** Allocations served from the cache so far. */
  hits: number;
}

export function cpuCacheInfo(): CpuCacheInfo {
  return native().cpuCacheInfo();
}

/** Gives the cached CPU blocks back to the system (like torch.cuda.empty_cache()). */
export function emptyCpuCache(): void {
  native().emptyCpuCache();
}
