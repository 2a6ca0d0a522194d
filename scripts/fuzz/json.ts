// JSON mutations shared by safetensors headers, split manifests and cache headers: replacing a
// value anywhere in a parsed document, deep nesting, and huge arrays in the text.
import { generic } from './generic';
import type { Rng } from './rng';

function interestingJson(rng: Rng): unknown {
  return rng.pick<() => unknown>([
    () => 2 ** 53, () => 2 ** 53 + 2, () => -1, () => 1.5, () => 1e308, () => -0, () => 0, () => 2 ** 31, () => 2 ** 32 + 1, () => 65535,
    () => 65536, () => '', () => '../..', () => '/etc/passwd', () => 'x'.repeat(rng.pick([10, 1000, 100000])), () => null, () => true,
    () => [], () => ({}), () => [2 ** 40, 2 ** 40], () => Array.from({ length: 1000 }, () => 1), () => '\u0000', () => '\ud800',
    () => ({ __proto__: { polluted: 1 } }), () => JSON.parse('{"__proto__": {"x": 1}}'), () => ['a', 'b'], () => 'NaN',
  ])();
}

/** Replaces a random value somewhere inside `value` (in place where possible). */
export function mutateJsonValue(rng: Rng, value: unknown, depth = 0): unknown {
  if (value === null || typeof value !== 'object' || depth > 8 || rng.chance(0.15)) return interestingJson(rng);
  if (Array.isArray(value)) {
    if (value.length === 0 || rng.chance(0.1)) {
      value.push(interestingJson(rng));
      return value;
    }
    const r = rng.int(10);
    if (r === 0) value.splice(rng.int(value.length), 1);
    else if (r === 1) value.push(...Array.from({ length: rng.pick([2, 100, 20000]) }, () => value[rng.int(value.length)]));
    else {
      const i = rng.int(value.length);
      value[i] = mutateJsonValue(rng, value[i], depth + 1);
    }
    return value;
  }
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj);
  if (keys.length === 0 || rng.chance(0.1)) {
    obj[rng.pick(['x', '__proto__', 'constructor', 'toString', ''])] = interestingJson(rng);
    return obj;
  }
  const k = rng.pick(keys);
  if (rng.chance(0.1)) delete obj[k];
  else obj[k] = mutateJsonValue(rng, obj[k], depth + 1);
  return obj;
}

export function deepJson(depth: number, open: string, close: string): string {
  return open.repeat(depth) + close.repeat(depth);
}

export function mutateJsonText(rng: Rng, text: string, others: readonly Buffer[]): Buffer {
  const choice = rng.weighted<string>([[30, 'value'], [4, 'deep'], [3, 'huge-array'], [15, 'generic']]);
  if (choice === 'value') {
    try {
      return Buffer.from(JSON.stringify(mutateJsonValue(rng, JSON.parse(text))));
    } catch {
      return generic(rng, Buffer.from(text), others);
    }
  }
  if (choice === 'deep') {
    const depth = rng.pick([1000, 100000, 1000000]);
    return Buffer.from(text.replace(/"parts"\s*:/, `"deep": ${deepJson(depth, '[', ']')}, "parts":`));
  }
  if (choice === 'huge-array') {
    const n = rng.pick([10000, 50000]);
    const entries = Array.from({ length: n }, (_, i) => `{"path":"a/${i}.jpg","label":0}`).join(',');
    return Buffer.from(text.replace(/"train"\s*:\s*\[/, `"train": [${entries},`));
  }
  return generic(rng, Buffer.from(text), others);
}
