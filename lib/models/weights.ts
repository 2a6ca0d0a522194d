// Weight files: torch.save's zip and legacy formats (read by a restricted unpickler that runs
// nothing from the file), safetensors, checkpoints that wrap the state_dict, DataParallel prefixes.
import * as fs from 'fs';
import * as path from 'path';
import { native, type NativeTensor, type PickleValue } from '../../binding';
import { Tensor } from '../tensor';
import { invalid, knownKeys, nonEmptyString, plainObject } from '../utils/validate';
import type { LoadResult, Model, StateDict } from './model';
import { looksLikeSafetensors, readSafetensors, writeSafetensors } from './safetensors';

export type WeightFormat = 'zip' | 'legacy' | 'safetensors';

export interface LoadedWeights {
  stateDict: StateDict;
  format: WeightFormat;
  /** Where in the file the state_dict sat: '' for a bare one, 'state_dict' or 'model' in a checkpoint. */
  foundAt: string;
  /** True when a DataParallel 'module.' prefix was removed from every key. */
  strippedModulePrefix: boolean;
}

/** Keys under which checkpoints commonly keep the model's state_dict, in the order tried. */
const WRAPPER_KEYS = ['state_dict', 'model', 'model_state_dict', 'net'];

function isTensor(value: unknown): value is NativeTensor {
  return value instanceof native().Tensor;
}

function isStateDictMap(value: PickleValue): value is Map<string, PickleValue> {
  if (!(value instanceof Map) || value.size === 0) return false;
  return [...value].every(([key, v]) => typeof key === 'string' && isTensor(v));
}

/** The state_dict inside a loaded torch.save value (bare, or wrapped by a checkpoint). */
export function findStateDict(value: PickleValue, file: string): { dict: Map<string, PickleValue>; foundAt: string } {
  if (isStateDictMap(value)) return { dict: value, foundAt: '' };
  if (value instanceof Map) {
    for (const key of WRAPPER_KEYS) {
      const inner = value.get(key);
      if (inner !== undefined && isStateDictMap(inner)) return { dict: inner, foundAt: key };
    }
    const keys = [...value.keys()].slice(0, 8).map(String);
    throw new Error(
      `cannot load '${file}': expected a state_dict (names to tensors) or a checkpoint holding one under ` +
        `${WRAPPER_KEYS.map((k) => `'${k}'`).join(', ')}; found a dict with keys ${keys.join(', ')}`,
    );
  }
  throw new Error(`cannot load '${file}': expected a state_dict (names to tensors) but the file holds ${Array.isArray(value) ? 'a list' : typeof value}`);
}

function stripModulePrefix(dict: StateDict): { dict: StateDict; stripped: boolean } {
  const keys = [...dict.keys()];
  if (keys.length === 0 || !keys.every((k) => k.startsWith('module.'))) return { dict, stripped: false };
  return { dict: new Map([...dict].map(([k, v]) => [k.slice('module.'.length), v])), stripped: true };
}

async function assertReadableFile(file: string): Promise<void> {
  let stat: fs.Stats;
  try {
    stat = await fs.promises.stat(file);
  } catch (error) {
    throw new Error(`cannot load '${file}': ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message}`);
  }
  if (!stat.isFile()) throw new Error(`cannot load '${file}': not a regular file`);
}

async function readHead(file: string, bytes: number): Promise<Buffer> {
  const handle = await fs.promises.open(file, 'r');
  try {
    const buffer = Buffer.alloc(bytes);
    const { bytesRead } = await handle.read(buffer, 0, bytes, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/** Reads any value torch.save wrote (dicts as Maps); for checkpoints beyond plain state_dicts. */
export async function loadTorchFile(file: string): Promise<{ format: 'zip' | 'legacy'; value: unknown }> {
  nonEmptyString('file', file);
  await assertReadableFile(file);
  const loaded = await native().loadTorchFile(path.resolve(file));
  return { format: loaded.format, value: wrapTensors(loaded.value) };
}

function wrapTensors(value: PickleValue): unknown {
  if (isTensor(value)) return new Tensor(value);
  if (Array.isArray(value)) return value.map(wrapTensors);
  if (value instanceof Map) return new Map([...value].map(([k, v]) => [k, wrapTensors(v)]));
  return value;
}

/** Writes a value as a zip-format torch.save file (Maps as OrderedDicts), atomically. */
export async function saveTorchFile(file: string, value: unknown): Promise<void> {
  nonEmptyString('file', file);
  await native().saveTorchFile(path.resolve(file), unwrapTensors(value, 0));
}

function unwrapTensors(value: unknown, depth: number): unknown {
  if (depth > 200) throw new TypeError('cannot save: nesting deeper than 200 levels (a cycle?)');
  if (value instanceof Tensor) return value.native;
  if (Array.isArray(value)) return value.map((v) => unwrapTensors(v, depth + 1));
  if (value instanceof Map) return new Map([...value].map(([k, v]) => [k, unwrapTensors(v, depth + 1)]));
  if (value !== null && typeof value === 'object' && !Buffer.isBuffer(value)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, unwrapTensors(v, depth + 1)]));
  }
  return value;
}

/** Loads a state_dict from a .pth/.pt (zip or legacy, bare or inside a checkpoint) or .safetensors file. */
export async function loadWeights(file: string): Promise<LoadedWeights> {
  nonEmptyString('file', file);
  await assertReadableFile(file);
  if (looksLikeSafetensors(await readHead(file, 16))) {
    const { tensors } = await readSafetensors(file);
    const { dict, stripped } = stripModulePrefix(tensors);
    return { stateDict: dict, format: 'safetensors', foundAt: '', strippedModulePrefix: stripped };
  }
  const loaded = await native().loadTorchFile(path.resolve(file));
  const { dict, foundAt } = findStateDict(loaded.value, file);
  const tensors: StateDict = new Map([...dict].map(([k, v]) => [k, new Tensor(v as NativeTensor)]));
  const { dict: stateDict, stripped } = stripModulePrefix(tensors);
  return { stateDict, format: loaded.format, foundAt, strippedModulePrefix: stripped };
}

/** Saves a state_dict: '.safetensors' by extension (or format), else a zip-format .pth PyTorch loads. */
export async function saveWeights(file: string, stateDict: StateDict, options: { format?: 'pth' | 'safetensors' } = {}): Promise<void> {
  nonEmptyString('file', file);
  if (!(stateDict instanceof Map)) throw invalid('Map of names to Tensors', 'stateDict', stateDict);
  for (const [name, value] of stateDict) if (!(value instanceof Tensor)) throw invalid('Tensor', `stateDict['${name}']`, value);
  const format = options.format ?? (file.endsWith('.safetensors') ? 'safetensors' : 'pth');
  if (format === 'safetensors') return writeSafetensors(file, stateDict);
  await native().saveTorchFile(path.resolve(file), new Map([...stateDict].map(([k, v]) => [k, v.native])));
}

export interface PretrainedLoadResult extends LoadResult {
  /** Head keys in the file whose shapes differ from the model's new head: left freshly initialised. */
  skippedKeys: string[];
  format?: WeightFormat;
}

/**
 * Loads pretrained weights into `model`, leaving a replaced head (e.g. 1000 ImageNet classes into a
 * 101-class model) freshly initialised and reporting it in `skippedKeys`. Any other shape mismatch is
 * an error; with strict (default) so are missing and unexpected keys outside the head. The layers of
 * a model's attention modules (which ImageNet files do not have) may be missing even when strict:
 * they are reported in `missingKeys` and keep their initialisation.
 */
export async function loadPretrained(
  model: Model,
  source: string | StateDict,
  options: { strict?: boolean } = {},
): Promise<PretrainedLoadResult> {
  knownKeys('loadPretrained options', plainObject('options', options), ['strict']);
  const strict = options.strict ?? true;
  const loaded = typeof source === 'string' ? await loadWeights(source) : undefined;
  const incoming = loaded ? loaded.stateDict : source;
  if (!(incoming instanceof Map)) throw invalid('file path or Map of names to Tensors', 'source', source);
  await model.reparametrizeFor([...incoming.keys()]);
  const own = model.stateDict();
  const head = model.headPrefix;
  const inHead = (name: string) => name === head || name.startsWith(`${head}.`);
  const skippedKeys: string[] = [];
  const kept: StateDict = new Map();
  for (const [name, t] of incoming) {
    const target = own.get(name);
    if (inHead(name) && target && target.shape.join() !== t.shape.join()) skippedKeys.push(name);
    else kept.set(name, t);
  }
  const missingKeys = [...own.keys()].filter((k) => !incoming.has(k) && !(skippedKeys.length > 0 && inHead(k)));
  const unexpectedKeys = [...kept.keys()].filter((k) => !own.has(k));
  for (const t of own.values()) t.dispose();
  const attention = model.attentionPrefixes;
  const notNew = missingKeys.filter((k) => !attention.some((p) => k.startsWith(`${p}.`)));
  if (strict && (notNew.length > 0 || unexpectedKeys.length > 0)) {
    const source_ = typeof source === 'string' ? `'${source}'` : 'the state_dict';
    throw new Error(
      `cannot load ${source_} into ${model.arch}: ` +
        [
          notNew.length ? `missing keys: ${notNew.slice(0, 10).join(', ')}${notNew.length > 10 ? ` … (${notNew.length})` : ''}` : '',
          unexpectedKeys.length ? `unexpected keys: ${unexpectedKeys.slice(0, 10).join(', ')}${unexpectedKeys.length > 10 ? ` … (${unexpectedKeys.length})` : ''}` : '',
        ]
          .filter(Boolean)
          .join('; ') +
        ' (is it a state_dict of another architecture? pass { strict: false } to load what matches)',
    );
  }
  await model.loadStateDict(kept, { strict: false });
  return { missingKeys, unexpectedKeys, skippedKeys, format: loaded?.format };
}
