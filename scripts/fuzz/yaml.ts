// YAML experiment configs: odd scalars, line edits, snippets (merge keys, tags, BOMs), alias
// bombs, deep nesting and long strings.
import { generic } from './generic';
import { deepJson } from './json';
import type { Rng } from './rng';

const YAML_SCALARS = [
  '.inf', '-.inf', '.nan', '1e309', '0x7fffffff', '0o777', '-0', '9007199254740993', '~', 'null', '[]', '{}', '""', "'\\0'", '!!binary AAAA',
  '!!js/function "function(){}"', '!!python/object:os.system ["ls"]', '&a 1', '*a', '*undefined', '!!str', '!!int "x"', '? complex key',
  '|', '>-', '"\\u0000"', '"\\ud800"', 'true', 'yes', 'on', '2001-12-14t21:59:43.10-05:00', '!<tag:yaml.org,2002:set> {a}',
];

function yamlAliasBomb(levels: number, width: number): string {
  const lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]'];
  for (let i = 1; i <= levels; i++) lines.push(`a${i}: &a${i} [${Array.from({ length: width }, () => `*a${i - 1}`).join(', ')}]`);
  lines.push(`weights: *a${levels}`);
  return `${lines.join('\n')}\n`;
}

export function mutateYaml(rng: Rng, seed: Buffer, others: readonly Buffer[]): Buffer {
  const text = seed.toString('utf8');
  const lines = text.split('\n');
  const choice = rng.weighted<string>([[20, 'value'], [8, 'lines'], [6, 'snippet'], [2, 'bomb'], [2, 'deep'], [2, 'long'], [20, 'generic']]);
  switch (choice) {
    case 'value': {
      const idx = lines.map((l, i) => [l, i] as const).filter(([l]) => /:\s*\S/.test(l) && !l.trim().startsWith('#'));
      if (idx.length) {
        const [l, i] = rng.pick(idx);
        lines[i] = l.replace(/:\s*.*$/, `: ${rng.pick(YAML_SCALARS)}`);
      }
      return Buffer.from(lines.join('\n'));
    }
    case 'lines': {
      const i = rng.int(lines.length);
      const r = rng.int(4);
      if (r === 0) lines.splice(i, 1);
      else if (r === 1) lines.splice(i, 0, lines[rng.int(lines.length)]);
      else if (r === 2) lines[i] = `\t${lines[i]}`;
      else lines[i] = ` ${lines[i]}`;
      return Buffer.from(lines.join('\n'));
    }
    case 'snippet': {
      const snippet = rng.pick([
        '<<: *base', 'base: &base {arch: alexnet}\n<<: *base', '---\narch: resnet18', '%YAML 1.1\n---', '? [a, b]\n: c', 'data: !!set {a, b}',
        'arch: !!binary aGVsbG8=', '\ufeffarch: alexnet', 'unknown_key: 1', 'Arch: alexnet', 'data: {root: [1, 2]}', 'data:\n  root: null',
        'augmentation: [1, 2, 3]', 'seed: !!float 1', 'epochs: 1e400', `run_name: ${'x'.repeat(100000)}`, 'weights: &w x\nweights: *w',
      ]);
      lines.splice(rng.int(lines.length + 1), 0, snippet);
      return Buffer.from(lines.join('\n'));
    }
    case 'bomb': return Buffer.from(text + yamlAliasBomb(rng.pick([5, 9, 20]), rng.pick([4, 9])));
    case 'deep': {
      const depth = rng.pick([1000, 20000, 100000]);
      const deep = rng.chance(0.5) ? deepJson(depth, '[', ']') : deepJson(depth, '{a: ', '}').replace('{a: }', '1');
      return Buffer.from(`data: ${deep}\n${text}`);
    }
    case 'long': return Buffer.from(`${rng.pick(['run_name', 'xxx', 'weights'])}: "${'\\u00e9'.repeat(rng.pick([1000, 200000]))}"\n${text}`);
    default: return generic(rng, seed, others);
  }
}
