// The CPU as /proc/cpuinfo lists it: its model and instruction-set flags. Pure parsing plus one
// cached read, so that every layer (amp: 'auto', the doctor) asks the same question the same way.
import * as fs from 'fs';

export interface CpuInfo {
  model: string | undefined;
  /** The first processor's flags (every core of one machine has the same). */
  flags: string[];
}

export function parseCpuInfo(text: string): CpuInfo {
  const field = (name: string) => new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm').exec(text)?.[1].trim();
  return { model: field('model name'), flags: (field('flags') ?? '').split(/\s+/).filter(Boolean) };
}

let cached: CpuInfo | undefined;

/** This machine's CPU (empty flags where /proc/cpuinfo cannot be read, e.g. not Linux). */
export function cpuInfo(): CpuInfo {
  if (!cached) {
    let text = '';
    try {
      text = fs.readFileSync('/proc/cpuinfo', 'utf8');
    } catch {
      // not Linux: no flags known
    }
    cached = parseCpuInfo(text);
  }
  return cached;
}

/** bf16 arithmetic in hardware (AVX-512 BF16 or AMX), where oneDNN's bf16 kernels beat float32. */
export function hasNativeBf16(flags: readonly string[]): boolean {
  return flags.includes('avx512_bf16') || flags.includes('amx_bf16');
}
