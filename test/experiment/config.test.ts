import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ConfigError, resolveConfig, SCHEMA, type Config } from '../../lib';

// Compile-time checks: Config is derived from SCHEMA, so a rule's kind, enum values and nullability
// are the type. These lines stop compiling (and the suite with them) if the two drift apart.
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
const typeChecks: Array<true> = [
  true as Equal<Config['data']['protocol'], 'per-class' | 'ratio'>,
  true as Equal<Config['amp'], boolean | 'fp16' | 'bf16' | 'auto'>,
  true as Equal<Config['head_lr'], number | null>,
  true as Equal<Config['run_name'], string | null>,
  true as Equal<Config['seeds'], number[] | null>,
  true as Equal<
    Config['augmentation'],
    {
      random_crop: boolean; horizontal_flip: boolean; color_jitter: number; random_erasing: number; mixup_alpha: number; cutmix_alpha: number;
      policy: 'none' | 'trivial_augment_wide' | 'rand_augment' | 'auto_augment'; rand_augment_ops: number; rand_augment_magnitude: number;
    }
  >,
  true as Equal<keyof Config, keyof typeof SCHEMA>,
];

describe('resolveConfig', () => {
  test('base.yaml holds the seed’s settings', () => {
    const c = resolveConfig();
    expect(c).toMatchObject({
      learning_rate: 1e-3, finetune_lr: 1e-5, batch_size: 32, epochs: 50, optimizer: 'adam', weight_decay: 1e-4,
      augmentation: { random_crop: true, horizontal_flip: true, color_jitter: 0.1, random_erasing: 0, mixup_alpha: 0, cutmix_alpha: 0, policy: 'none', rand_augment_ops: 2, rand_augment_magnitude: 9 },
    });
  });

  test('experiment files override the base, flags override both, nested keys merge', () => {
    const c = resolveConfig({ config: 'alexnet_scratch', overrides: { epochs: 3, 'data.root': '/x', 'augmentation.color_jitter': 0.2 } });
    expect(c).toMatchObject({ arch: 'alexnet', phase: 'scratch', weights: 'none', epochs: 3, data: { root: '/x', train_per_class: 30 } });
    expect(c.augmentation).toEqual({ random_crop: true, horizontal_flip: true, color_jitter: 0.2, random_erasing: 0, mixup_alpha: 0, cutmix_alpha: 0, policy: 'none', rand_augment_ops: 2, rand_augment_magnitude: 9 });
    for (const name of fs.readdirSync(path.join(__dirname, '../../configs/experiments'))) expect(() => resolveConfig({ config: name })).not.toThrow();
  });

  test('an unknown key suggests the nearest known one, in any layer', () => {
    expect(() => resolveConfig({ overrides: { learning_rat: 1 } })).toThrow("command line: unknown key 'learning_rat' (did you mean 'learning_rate'?)");
    expect(() => resolveConfig({ overrides: { 'data.train_per_clas': 1 } })).toThrow("unknown key 'data.train_per_clas' (did you mean 'data.train_per_class'?)");
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ft-config-')), 'bad.yaml');
    fs.writeFileSync(file, 'optimiser: sgd\n');
    expect(() => resolveConfig({ config: file })).toThrow(`${file}: unknown key 'optimiser' (did you mean 'optimizer'?)`);
  });

  test('types, ranges and enums are checked with what was expected and what came', () => {
    expect(() => resolveConfig({ overrides: { batch_size: 0 } })).toThrow('expected an integer between 1 and ∞ for batch_size but received 0 of type number');
    expect(() => resolveConfig({ overrides: { optimizer: 'rmsprop' } })).toThrow("expected one of sgd, adam, adamw for optimizer but received 'rmsprop' of type string");
    expect(() => resolveConfig({ overrides: { device: 'gpu' } })).toThrow("expected 'auto', 'cpu', 'cuda' or 'cuda:N' for device");
    expect(() => resolveConfig({ overrides: { arch: 'alexnet', head: 'conv1x1' } })).toThrow("head 'conv1x1' needs a ResNet");
    expect(() => resolveConfig({ overrides: { image_size: 300 } })).toThrow('resize (256) must be at least image_size (300)');
    expect(() => resolveConfig({ overrides: { train_max_side: 200 } })).toThrow('train_max_side (200) must be at least image_size (224) or null');
    expect(resolveConfig({ overrides: { train_max_side: null } }).train_max_side).toBeNull();
    expect(() => resolveConfig({ config: '/nonexistent.yaml' })).toThrow("cannot read config '/nonexistent.yaml': no such file");
    expect(() => resolveConfig({ overrides: { seeds: [0, 0] } })).toThrow('expected a non-empty list of different integers between 0 and 4294967295 for seeds but received an array of length 2');
    expect(() => resolveConfig({ overrides: { seeds: 3 } })).toThrow('for seeds but received 3 of type number');
    expect(resolveConfig({ overrides: { seeds: [2, 0, 1] } }).seeds).toEqual([2, 0, 1]);
    expect(() => resolveConfig({ overrides: { epochs: 2 } })).not.toThrow(ConfigError);
  });

  test('the resolved config has exactly the schema\'s keys, nested ones included', () => {
    expect(typeChecks.every(Boolean)).toBe(true);
    const c = resolveConfig();
    expect(Object.keys(c).sort()).toEqual(Object.keys(SCHEMA).sort());
    expect(Object.keys(c.data).sort()).toEqual(Object.keys(SCHEMA.data.fields).sort());
    expect(Object.keys(c.augmentation).sort()).toEqual(Object.keys(SCHEMA.augmentation.fields).sort());
  });
});
