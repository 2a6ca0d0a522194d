// The run configuration: configs/base.yaml, then an experiment file, then command-line flags, merged
// and validated against one schema. An unknown key is an error that suggests the nearest known key.
import * as fs from 'fs';
import * as path from 'path';
import YAML from 'yaml';
import { AUGMENT_POLICIES, MAGNITUDE_BINS, MAX_POLICY_STEPS } from '../data/auto-augment';
import { ARCHITECTURES, ATTENTIONS, HEADS } from '../models/model';
import { OPTIMIZERS } from '../training/optimizer';
import { describe as describeValue, nearest } from '../utils/validate';

export const PHASES = ['feature_extract', 'finetune', 'scratch', 'two-stage'] as const;
export type Phase = (typeof PHASES)[number];
export const SCHEDULERS = ['none', 'step', 'cosine', 'warmup_cosine', 'plateau'] as const;

// The schema is the one source of the configuration: the `Config` type is derived from it below,
// so a key added here is typed everywhere and a key missing here cannot be used.
type Rule =
  | { kind: 'number'; min?: number; max?: number; integer?: boolean; nullable?: boolean }
  | { kind: 'enum'; values: readonly string[]; orBoolean?: boolean }
  | { kind: 'boolean' }
  | { kind: 'string'; nullable?: boolean; pattern?: RegExp; hint?: string }
  | { kind: 'integers'; min: number; max: number; nullable?: boolean }
  | { kind: 'object'; fields: Readonly<Record<string, Rule>> };

/** The TypeScript type of a value that passed `rule`. */
type ValueOf<R> = R extends { kind: 'number' }
  ? number | (R extends { nullable: true } ? null : never)
  : R extends { kind: 'enum'; values: readonly (infer V)[] }
    ? V | (R extends { orBoolean: true } ? boolean : never)
    : R extends { kind: 'boolean' }
      ? boolean
      : R extends { kind: 'string' }
        ? string | (R extends { nullable: true } ? null : never)
        : R extends { kind: 'integers' }
          ? number[] | (R extends { nullable: true } ? null : never)
        : R extends { kind: 'object'; fields: infer F }
          ? { -readonly [K in keyof F]: ValueOf<F[K]> }
          : never;

const positiveInt = { kind: 'number', min: 1, integer: true } as const;
const rate = { kind: 'number', min: 0, max: 1e6 } as const;

export const SCHEMA = {
  arch: { kind: 'enum', values: ARCHITECTURES },
  head: { kind: 'enum', values: HEADS },
  attention: { kind: 'enum', values: ATTENTIONS },
  weights: { kind: 'string', hint: "'imagenet', 'none' or a path to a .pth/.safetensors file" },
  phase: { kind: 'enum', values: PHASES },
  learning_rate: rate,
  finetune_lr: rate,
  head_lr: { ...rate, nullable: true },
  batch_size: positiveInt,
  epochs: { kind: 'number', min: 0, integer: true },
  finetune_epochs: { kind: 'number', min: 0, integer: true, nullable: true },
  optimizer: { kind: 'enum', values: OPTIMIZERS },
  momentum: { kind: 'number', min: 0, max: 1 },
  weight_decay: { kind: 'number', min: 0, max: 1 },
  scheduler: { kind: 'enum', values: SCHEDULERS },
  label_smoothing: { kind: 'number', min: 0, max: 1 },
  augmentation: {
    kind: 'object',
    fields: {
      random_crop: { kind: 'boolean' },
      horizontal_flip: { kind: 'boolean' },
      color_jitter: { kind: 'number', min: 0, max: 1 },
      random_erasing: { kind: 'number', min: 0, max: 1 },
      mixup_alpha: { kind: 'number', min: 0, max: 1e6 },
      cutmix_alpha: { kind: 'number', min: 0, max: 1e6 },
      policy: { kind: 'enum', values: AUGMENT_POLICIES },
      rand_augment_ops: { kind: 'number', min: 0, max: MAX_POLICY_STEPS, integer: true },
      rand_augment_magnitude: { kind: 'number', min: 0, max: MAGNITUDE_BINS - 1, integer: true },
    },
  },
  feature_extract_augmentation: { kind: 'boolean' },
  feature_cache: { kind: 'boolean' },
  image_size: { kind: 'number', min: 16, max: 4096, integer: true },
  resize: { kind: 'number', min: 16, max: 8192, integer: true },
  train_max_side: { kind: 'number', min: 16, max: 16384, integer: true, nullable: true },
  data: {
    kind: 'object',
    fields: {
      root: { kind: 'string' },
      include_background: { kind: 'boolean' },
      protocol: { kind: 'enum', values: ['per-class', 'ratio'] },
      train_per_class: positiveInt,
      test_per_class: positiveInt,
      val_per_class: { kind: 'number', min: 0, integer: true },
      train_ratio: { kind: 'number', min: 0, max: 1 },
      val_ratio: { kind: 'number', min: 0, max: 1 },
      test_ratio: { kind: 'number', min: 0, max: 1 },
      cache_file: { kind: 'string', nullable: true },
    },
  },
  amp: { kind: 'enum', values: ['fp16', 'bf16', 'auto'], orBoolean: true },
  channels_last: { kind: 'boolean' },
  conv_algorithm: { kind: 'enum', values: ['auto', 'direct', 'winograd'] },
  device: { kind: 'string', pattern: /^(auto|cpu|cuda(:\d+)?)$/, hint: "'auto', 'cpu', 'cuda' or 'cuda:N'" },
  threads: { kind: 'number', min: 1, max: 1024, integer: true, nullable: true },
  seed: { kind: 'number', min: 0, max: 0xffffffff, integer: true },
  seeds: { kind: 'integers', min: 0, max: 0xffffffff, nullable: true },
  output_dir: { kind: 'string' },
  run_name: { kind: 'string', nullable: true, pattern: /^[\w.-]+$/, hint: 'letters, digits, ".", "_" and "-" only' },
  init_checkpoint: { kind: 'string', nullable: true },
  quiet: { kind: 'boolean' },
  report: { kind: 'boolean' },
  checkpoint_interval: { kind: 'number', min: 0, max: 1e9 },
  dist_backend: { kind: 'enum', values: ['auto', 'gloo', 'nccl'] },
  dist_timeout: { kind: 'number', min: 1, max: 86400 },
  prune: {
    kind: 'object',
    fields: {
      method: { kind: 'enum', values: ['none', 'l1_unstructured', 'global_l1', 'l2_structured', 'l2_structured_shrink'] },
      amount: { kind: 'number', min: 0, max: 0.999 },
      steps: positiveInt,
    },
  },
} as const satisfies Record<string, Rule>;

/** A complete, validated run configuration (every key of SCHEMA, typed by its rule). */
export type Config = ValueOf<{ kind: 'object'; fields: typeof SCHEMA }>;

/** One phase of a run (two-stage is two of them). */
export type SinglePhase = Exclude<Phase, 'two-stage'>;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

function checkValue(key: string, rule: Rule, value: unknown, source: string): unknown {
  const fail = (expected: string) => new ConfigError(`${source}: expected ${expected} for ${key} but received ${describeValue(value)}`);
  switch (rule.kind) {
    case 'number': {
      if (value === null && rule.nullable) return null;
      if (typeof value !== 'number' || !Number.isFinite(value)) throw fail(rule.integer ? 'an integer' : 'a number');
      if (rule.integer && !Number.isInteger(value)) throw fail('an integer');
      if ((rule.min !== undefined && value < rule.min) || (rule.max !== undefined && value > rule.max)) {
        throw fail(`${rule.integer ? 'an integer' : 'a number'} between ${rule.min ?? '-∞'} and ${rule.max ?? '∞'}`);
      }
      return value;
    }
    case 'enum':
      if (rule.orBoolean && typeof value === 'boolean') return value;
      if (typeof value !== 'string' || !rule.values.includes(value)) throw fail(`${rule.orBoolean ? 'true, false or ' : ''}one of ${rule.values.join(', ')}`);
      return value;
    case 'boolean':
      if (typeof value !== 'boolean') throw fail('true or false');
      return value;
    case 'string':
      if (value === null && rule.nullable) return null;
      if (typeof value !== 'string' || value.length === 0 || (rule.pattern && !rule.pattern.test(value))) throw fail(rule.hint ?? 'a non-empty string');
      return value;
    case 'integers': {
      if (value === null && rule.nullable) return null;
      const ok = Array.isArray(value) && value.length > 0 && value.every((v) => Number.isInteger(v) && v >= rule.min && v <= rule.max);
      if (!ok || new Set(value).size !== value.length) throw fail(`a non-empty list of different integers between ${rule.min} and ${rule.max}`);
      return value;
    }
    case 'object': {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) throw fail('a mapping');
      return checkObject(value as Record<string, unknown>, rule.fields, source, `${key}.`);
    }
  }
}

function checkObject(value: Record<string, unknown>, fields: Readonly<Record<string, Rule>>, source: string, prefix = ''): Record<string, unknown> {
  const known = Object.keys(fields);
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) {
      const near = nearest(key, known);
      throw new ConfigError(`${source}: unknown key '${prefix}${key}'${near ? ` (did you mean '${prefix}${near}'?)` : ''}`);
    }
  }
  const out: Record<string, unknown> = {};
  for (const [key, rule] of Object.entries(fields)) {
    if (key in value) out[key] = checkValue(`${prefix}${key}`, rule, value[key], source);
  }
  return out;
}

function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && b && typeof b === 'object' ? deepMerge(b as Record<string, unknown>, v as Record<string, unknown>) : v;
  }
  return out;
}

export function readYaml(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read config '${file}': ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = YAML.parse(text, { maxAliasCount: 100 });
  } catch (error) {
    throw new ConfigError(`${file}: not valid YAML: ${(error as Error).message.split('\n')[0]}`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new ConfigError(`${file}: expected a mapping of keys to values at the top level`);
  return parsed as Record<string, unknown>;
}

/** The folder holding base.yaml: the package's configs/ (works from the repo and from an install). */
export function configsDir(): string {
  let dir = __dirname;
  for (;;) {
    if (fs.existsSync(path.join(dir, 'configs', 'base.yaml'))) return path.join(dir, 'configs');
    const parent = path.dirname(dir);
    if (parent === dir) throw new ConfigError('cannot find configs/base.yaml next to the finetorch package');
    dir = parent;
  }
}

/**
 * base.yaml <- experiment file (a path, or a name in configs/experiments) <- overrides (CLI flags,
 * dotted keys allowed: { 'data.root': 'x' }). Every layer is validated; the result is complete.
 */
export function resolveConfig(options: { config?: string; overrides?: Record<string, unknown>; base?: string } = {}): Config {
  const baseFile = options.base ?? path.join(configsDir(), 'base.yaml');
  const base = readYaml(baseFile);
  checkObject(base, SCHEMA, baseFile);
  let merged = base;
  if (options.config) {
    let file = options.config;
    if (!fs.existsSync(file)) {
      const named = path.join(configsDir(), 'experiments', file.endsWith('.yaml') ? file : `${file}.yaml`);
      if (fs.existsSync(named)) file = named;
    }
    const experiment = readYaml(file);
    checkObject(experiment, SCHEMA, file);
    merged = deepMerge(merged, experiment);
  }
  if (options.overrides) {
    const nested: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(options.overrides)) {
      if (value === undefined) continue;
      const parts = key.split('.');
      let at = nested;
      for (const part of parts.slice(0, -1)) at = (at[part] ??= {}) as Record<string, unknown>;
      at[parts[parts.length - 1]] = value;
    }
    checkObject(nested, SCHEMA, 'command line');
    merged = deepMerge(merged, nested);
  }
  const config = checkObject(merged, SCHEMA, 'merged config') as unknown as Config;
  const missing = Object.keys(SCHEMA).filter((k) => !(k in config));
  if (missing.length) throw new ConfigError(`${baseFile}: missing keys ${missing.join(', ')}`);
  if (config.head === 'conv1x1' && !config.arch.startsWith('resnet')) {
    throw new ConfigError(`head 'conv1x1' needs a ResNet but arch is '${config.arch}'`);
  }
  if (config.attention !== 'none' && !config.arch.startsWith('resnet')) {
    throw new ConfigError(`attention '${config.attention}' needs a ResNet but arch is '${config.arch}'`);
  }
  if (config.prune.method !== 'none' && config.phase !== 'finetune' && config.phase !== 'two-stage') {
    throw new ConfigError(`prune applies to the finetune phase (and two-stage's finetune stage) but phase is '${config.phase}'`);
  }
  if (config.prune.method === 'l2_structured_shrink' && !config.arch.startsWith('resnet')) {
    throw new ConfigError(`prune.method 'l2_structured_shrink' needs a ResNet but arch is '${config.arch}'`);
  }
  if (config.resize < config.image_size) throw new ConfigError(`resize (${config.resize}) must be at least image_size (${config.image_size})`);
  if (config.train_max_side !== null && config.train_max_side < config.image_size) {
    throw new ConfigError(`train_max_side (${config.train_max_side}) must be at least image_size (${config.image_size}) or null`);
  }
  if (config.data.protocol === 'ratio' && Math.abs(config.data.train_ratio + config.data.val_ratio + config.data.test_ratio - 1) > 1e-9) {
    throw new ConfigError('data.train_ratio + data.val_ratio + data.test_ratio must add up to 1');
  }
  return config;
}

export function configToYaml(config: Config): string {
  return YAML.stringify(config);
}
