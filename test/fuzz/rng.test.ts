// The fuzzer's random streams must survive refactoring: a recorded `--seed` reproduces a finding
// only while Rng gives the same numbers. The expected values below were captured from the
// pre-split scripts/fuzz.ts (its private mulberry32 and FNV-1a) and from lib/data/random.ts before
// both were made to share lib's mulberry32 step; hash32 and crc32 are lib's functions now.
import { crc32 } from '../../lib/download/zip';
import { hashString, mulberry32, Random } from '../../lib/data/random';
import { hash32, Rng } from '../../scripts/fuzz';

// pre-split stream: new Rng(seed), five next() then five int(1000)
const PRE_SPLIT_RNG: Record<number, { next: number[]; int: number[] }> = {
  0: { next: [0.3588899802416563, 0.10590326134115458, 0.675290479324758, 0.9179345588199794, 0.10157715040259063], int: [301, 24, 466, 433, 547] },
  1: { next: [0.6270739405881613, 0.002735721180215478, 0.5274470399599522, 0.9810509674716741, 0.9683778982143849], int: [281, 612, 720, 425, 994] },
  7: { next: [0.011704753153026104, 0.06195825757458806, 0.97690763277933, 0.6990287057124078, 0.5214452685322613], int: [405, 466, 239, 553, 729] },
  12345: { next: [0.9797282677609473, 0.3067522644996643, 0.484205421525985, 0.817934412509203, 0.5094283693470061], int: [347, 73, 766, 996, 825] },
  4294967295: { next: [0.8964226141106337, 0.189478256739676, 0.7156526781618595, 0.9440599093213677, 0.8452364315744489], int: [539, 680, 475, 135, 988] },
};
const HASH_INPUTS = ['', 'a', 'foobar', '1:zip:0', '7:png:299', 'ünïcode ☃'];
// pre-split hash32 (and lib's hashString) of HASH_INPUTS
const PRE_SPLIT_HASHES = [2166136261, 3826002220, 3214735720, 1643136059, 3755266589, 113129444];

describe("the fuzzer's Rng", () => {
  test.each(Object.keys(PRE_SPLIT_RNG).map(Number))('seed %d gives the pre-split stream', (seed) => {
    const rng = new Rng(seed);
    const next = Array.from({ length: 5 }, () => rng.next());
    const int = Array.from({ length: 5 }, () => rng.int(1000));
    expect({ next, int }).toEqual(PRE_SPLIT_RNG[seed]);
  });

  test('bytes and weighted draws of the stream of input 1:zip:0 are the pre-split ones', () => {
    const rng = new Rng(hash32('1:zip:0'));
    expect(rng.bytes(8).toString('hex')).toBe('d8810ef45c16c41a');
    const picks = Array.from({ length: 6 }, () => rng.weighted([[1, 'a'], [2, 'b'], [3, 'c']] as [number, string][])).join('');
    expect(picks).toBe('cbbcca');
  });

  test('hash32 is lib/data/random.hashString, with the pre-split values', () => {
    expect(HASH_INPUTS.map(hash32)).toEqual(PRE_SPLIT_HASHES);
    expect(HASH_INPUTS.map(hashString)).toEqual(PRE_SPLIT_HASHES);
  });
});

describe("lib's Random, which shares the mulberry32 step", () => {
  // captured from lib/data/random.ts before mulberry32 was taken out of Random.nextUint32
  const PRE_SPLIT_RANDOM: Record<number, { u32: number[]; int: number[]; normal: number }> = {
    0: { u32: [2673918951, 1525398398, 1851933717, 1087923286, 744930619], int: [5, 1, 8, 0, 3], normal: -0.5008783528548689 },
    1: { u32: [711699459, 1679400207, 1692264768, 2520730185, 1490823452], int: [8, 9, 0, 4, 8], normal: -1.0916207191457579 },
    42: { u32: [763744907, 2711839145, 2121928412, 3759587137, 2652876385], int: [0, 9, 9, 9, 5], normal: 1.0630636008779055 },
    4294967295: { u32: [2243319414, 3892457524, 3774914640, 1708185691, 4150724432], int: [0, 5, 6, 1, 3], normal: 1.324496989607257 },
  };
  test.each(Object.keys(PRE_SPLIT_RANDOM).map(Number))('seed %d gives the same stream as before', (seed) => {
    const r = new Random(seed);
    const u32 = Array.from({ length: 5 }, () => r.nextUint32());
    const int = Array.from({ length: 5 }, () => r.int(10));
    expect({ u32, int, normal: r.normal() }).toEqual(PRE_SPLIT_RANDOM[seed]);
  });

  test('mulberry32 advances the state by its increment', () => {
    expect(mulberry32(0)).toEqual({ state: 0x6d2b79f5, value: expect.any(Number) });
    expect(mulberry32(0xffffffff).state).toBe(0x6d2b79f4);
  });
});

test('crc32 (lib/download/zip) is the standard CRC-32', () => {
  expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
  expect(crc32(Buffer.alloc(0))).toBe(0);
  // continuing a CRC over a second chunk gives the CRC of the whole
  expect(crc32(Buffer.from('56789'), crc32(Buffer.from('1234')))).toBe(0xcbf43926);
});
