// What libtorch this process runs on, and the knobs that apply to the whole process.
import { native, type RuntimeInfo } from '../binding';
import { validateDevice } from './tensor';
import { boolean, integerInRange, nonNegativeInteger } from './utils/validate';

export type { RuntimeInfo } from '../binding';

export function runtimeInfo(): RuntimeInfo & { threads: number } {
  return { ...native().info(), threads: native().getNumThreads() };
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
