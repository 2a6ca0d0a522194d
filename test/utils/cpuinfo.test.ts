import * as fs from 'fs';
import { cpuInfo, hasNativeBf16, parseCpuInfo } from '../../lib/utils/cpuinfo';

describe('cpuinfo', () => {
  test('the first processor\'s model and flags', () => {
    const text = 'processor\t: 0\nmodel name\t: AMD EPYC 9B14\nflags\t\t: fpu sse avx2 avx512f avx512_bf16\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 9B14\nflags\t\t: fpu\n';
    expect(parseCpuInfo(text)).toEqual({ model: 'AMD EPYC 9B14', flags: ['fpu', 'sse', 'avx2', 'avx512f', 'avx512_bf16'] });
    expect(parseCpuInfo('')).toEqual({ model: undefined, flags: [] });
  });

  test('bf16 in hardware: AVX-512 BF16 or AMX, not plain AVX-512', () => {
    expect(hasNativeBf16(['avx512f', 'avx512_bf16'])).toBe(true);
    expect(hasNativeBf16(['amx_tile', 'amx_bf16'])).toBe(true);
    expect(hasNativeBf16(['avx2', 'avx512f', 'avx512_vnni'])).toBe(false);
    expect(hasNativeBf16([])).toBe(false);
  });

  test('this machine: the flags /proc/cpuinfo lists', () => {
    const text = fs.existsSync('/proc/cpuinfo') ? fs.readFileSync('/proc/cpuinfo', 'utf8') : '';
    const flags = (/^flags\s*:(.*)$/m.exec(text)?.[1] ?? '').trim().split(/\s+/).filter(Boolean);
    expect(cpuInfo().flags).toEqual(flags);
  });
});
