// What libtorch this process runs on, and the knobs that apply to the whole process.
import { native, type RuntimeInfo } from '../binding';
import { integerInRange, nonNegativeInteger } from './utils/validate';

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
