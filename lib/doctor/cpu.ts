// The CPU as libtorch's kernels see it: the instruction-set extensions /proc/cpuinfo lists, and how
// many cores this process may really use (its affinity mask, and a container's CPU quota).

export { parseCpuInfo, type CpuInfo } from '../utils/cpuinfo';

export interface CpuFeature {
  /** A /proc/cpuinfo flag (or several: any of them counts). */
  name: string;
  present: boolean;
  /** What libtorch uses it for. */
  use: string;
}

/** The extensions that decide which of libtorch's and oneDNN's kernels run. */
export const CPU_FEATURES: ReadonlyArray<{ name: string; flags: string[]; use: string }> = Object.freeze([
  { name: 'avx2', flags: ['avx2'], use: "ATen's vectorised kernels (picked at run time) and OpenBLAS's Haswell GEMM" },
  { name: 'fma', flags: ['fma'], use: 'fused multiply-add in GEMM and convolution kernels' },
  { name: 'avx512f', flags: ['avx512f'], use: "ATen's, oneDNN's and OpenBLAS's AVX-512 kernels" },
  { name: 'avx512_vnni', flags: ['avx512_vnni', 'avx_vnni'], use: 'int8 dot products (quantised inference)' },
  { name: 'avx512_bf16', flags: ['avx512_bf16'], use: "native bf16 convolutions and matmuls for amp: 'bf16' (otherwise converted to float)" },
  { name: 'amx', flags: ['amx_bf16', 'amx_tile', 'amx_int8'], use: "AMX tiles: bf16/int8 matrix units for oneDNN's convolutions" },
]);

export function cpuFeatures(flags: string[]): CpuFeature[] {
  const have = new Set(flags);
  return CPU_FEATURES.map((f) => ({ name: f.name, present: f.flags.some((flag) => have.has(flag)), use: f.use }));
}

/**
 * A cgroup v2 `cpu.max` text ("200000 100000": quota and period in µs; "max 100000": no limit) as
 * a number of cores, rounded up; undefined when unlimited or unreadable.
 */
export function cgroupCpuLimit(cpuMax: string | undefined): number | undefined {
  const m = /^(\d+)\s+(\d+)\s*$/.exec((cpuMax ?? '').trim());
  if (!m || Number(m[2]) === 0) return undefined;
  return Math.max(1, Math.ceil(Number(m[1]) / Number(m[2])));
}
