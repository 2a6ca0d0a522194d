// Legacy (pre-1.6) torch.save files: magic, protocol, sys_info, main pickle, storage keys, then
// raw storages, each preceded by its int64 element count. Mutates one part at a time.
import { u64, writeUInt } from './bytes';
import { generic } from './generic';
import { craftedPickle, mutatePickle, pickleOps, PickleWriter, stateDictPickle } from './pickle';
import type { Rng } from './rng';

function legacyLayout(buf: Buffer): { ends: number[] } | undefined {
  const ends: number[] = [];
  let pos = 0;
  for (let i = 0; i < 5; i++) {
    const { end } = pickleOps(buf, pos);
    if (end < 0) return undefined;
    ends.push(end);
    pos = end;
  }
  return { ends };
}

export function mutateLegacy(rng: Rng, seed: Buffer, others: readonly Buffer[]): Buffer {
  const layout = legacyLayout(seed);
  if (!layout) return generic(rng, seed, others);
  const [, protoEnd, sysEnd, mainEnd, keysEnd] = layout.ends;
  const choice = rng.weighted<string>([[35, 'main'], [8, 'keys'], [15, 'count'], [10, 'crafted'], [4, 'sys'], [4, 'storage-bytes']]);
  const rebuild = (main: Buffer, keys = seed.subarray(mainEnd, keysEnd), rest = seed.subarray(keysEnd)) =>
    Buffer.concat([seed.subarray(0, sysEnd), main, keys, rest]);
  switch (choice) {
    case 'main': return rebuild(mutatePickle(rng, seed.subarray(sysEnd, mainEnd), others));
    case 'keys': return rebuild(seed.subarray(sysEnd, mainEnd), mutatePickle(rng, seed.subarray(mainEnd, keysEnd), others));
    case 'count': {
      // a storage's int64 element count claims too much (or too little)
      const out = Buffer.from(seed);
      // storages follow the keys: count, data, count, data... find the first count; others by walking
      // is not possible without knowing dtypes, so poke the first count or a random 8-byte slot
      const at = rng.chance(0.6) ? keysEnd : keysEnd + 8 * rng.int(Math.max(1, Math.floor((seed.length - keysEnd) / 8)));
      writeUInt(out, at, 8, rng.pick([2n ** 63n - 1n, 2n ** 63n, 2n ** 64n - 1n, 2n ** 62n, 2n ** 40n, 100n * 2n ** 30n, 0n, 1n, 2n ** 32n]));
      return out;
    }
    case 'crafted': {
      // a main pickle naming storages with huge element counts, and counts to match
      const big = rng.pick([2n ** 40n, 2n ** 61n, 2n ** 62n, 2n ** 63n - 1n, 100n * 2n ** 30n, 2n ** 28n]);
      const main = stateDictPickle([{ name: 'w', key: '0', numel: big, sizes: [big], strides: [1] }]);
      const keys = new PickleWriter().proto().mark().str('0').raw('l').stop();
      return Buffer.concat([seed.subarray(0, sysEnd), rng.chance(0.3) ? craftedPickle(rng) : main, keys, u64(big), rng.bytes(rng.int(256))]);
    }
    case 'sys': return Buffer.concat([seed.subarray(0, protoEnd), mutatePickle(rng, seed.subarray(protoEnd, sysEnd), others), seed.subarray(sysEnd)]);
    default: return Buffer.concat([seed.subarray(0, keysEnd), generic(rng, seed.subarray(keysEnd), [])]);
  }
}
