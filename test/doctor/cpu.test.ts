import * as fs from 'fs';
import { cgroupCpuLimit, cpuFeatures, parseCpuInfo } from '../../lib/doctor';

describe('parseCpuInfo and cpuFeatures', () => {
  test("an AVX-512 server's flags", () => {
    const text = [
      'processor\t: 0', 'model name\t: Intel(R) Xeon(R) Platinum 8480+', 'flags\t\t: fpu sse2 avx avx2 fma avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile', '',
      'processor\t: 1', 'model name\t: Intel(R) Xeon(R) Platinum 8480+', 'flags\t\t: fpu sse2 avx avx2 fma avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile', '',
    ].join('\n');
    const info = parseCpuInfo(text);
    expect(info.model).toBe('Intel(R) Xeon(R) Platinum 8480+');
    expect(info.flags).toEqual(['fpu', 'sse2', 'avx', 'avx2', 'fma', 'avx512f', 'avx512_vnni', 'avx512_bf16', 'amx_bf16', 'amx_tile']);
    expect(cpuFeatures(info.flags).filter((f) => !f.present)).toEqual([]);
  });

  test('an AVX2-only laptop: AVX-512, VNNI, BF16 and AMX absent; avx_vnni counts as VNNI', () => {
    const present = (flags: string) => cpuFeatures(parseCpuInfo(`flags\t: ${flags}\n`).flags).filter((f) => f.present).map((f) => f.name);
    expect(present('sse2 avx avx2 fma')).toEqual(['avx2', 'fma']);
    expect(present('avx2 fma avx_vnni')).toEqual(['avx2', 'fma', 'avx512_vnni']);
    expect(parseCpuInfo('processor\t: 0\n')).toEqual({ model: undefined, flags: [] });
  });

  test("this machine's /proc/cpuinfo: each feature is present exactly when its flag is listed", () => {
    const text = fs.readFileSync('/proc/cpuinfo', 'utf8');
    const line = text.split('\n').find((l) => l.startsWith('flags')) ?? '';
    const has = (flag: string) => new RegExp(`[\\s:]${flag}(\\s|$)`).test(line);
    const features = Object.fromEntries(cpuFeatures(parseCpuInfo(text).flags).map((f) => [f.name, f.present]));
    expect(features.avx2).toBe(has('avx2'));
    expect(features.avx512f).toBe(has('avx512f'));
    expect(features.avx512_bf16).toBe(has('avx512_bf16'));
    expect(features.avx512_vnni).toBe(has('avx512_vnni') || has('avx_vnni'));
  });
});

describe('cgroupCpuLimit', () => {
  test.each([
    ['200000 100000\n', 2],
    ['150000 100000', 2],
    ['50000 100000', 1],
    ['max 100000\n', undefined],
    ['', undefined],
    [undefined, undefined],
  ])('%p -> %p cores', (text, cores) => expect(cgroupCpuLimit(text)).toBe(cores));
});
