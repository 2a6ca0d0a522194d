// torchvision's ImageNet weights, fetched into (and reused from) PyTorch's own hub cache.
//
// URLs and file names are the IMAGENET1K_V1 entries of Debian's torchvision 0.14
// (torchvision/models/{resnet,alexnet,vgg,mobilenetv3}.py). The `-<hex>.` part of each name is the start of
// the file's sha256, which torch.hub.load_state_dict_from_url(check_hash=True) checks; so does
// this module, for downloads and (once per process) for files found in the cache.
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { invalid, knownKeys, nonEmptyString, oneOf, plainObject } from '../utils/validate';
import { ChecksumError, downloadFile, hashFile, httpUrl, type ProgressCallback, type TransferOptions } from './fetch-file';

export const WEIGHTS_ARCHITECTURES = ['alexnet', 'resnet18', 'resnet34', 'resnet50', 'vgg16', 'mobilenet_v3_large', 'efficientnet_b0'] as const;
export type WeightsArch = (typeof WEIGHTS_ARCHITECTURES)[number];

export interface WeightsEntry {
  arch: WeightsArch;
  url: string;
  file: string;
}

/** IMAGENET1K_V1 weights as torchvision 0.14 names them. */
export const IMAGENET_WEIGHTS: readonly WeightsEntry[] = Object.freeze([
  { arch: 'resnet18', url: 'https://download.pytorch.org/models/resnet18-f37072fd.pth', file: 'resnet18-f37072fd.pth' },
  { arch: 'alexnet', url: 'https://download.pytorch.org/models/alexnet-owt-7be5be79.pth', file: 'alexnet-owt-7be5be79.pth' },
  { arch: 'resnet34', url: 'https://download.pytorch.org/models/resnet34-b627a593.pth', file: 'resnet34-b627a593.pth' },
  { arch: 'resnet50', url: 'https://download.pytorch.org/models/resnet50-0676ba61.pth', file: 'resnet50-0676ba61.pth' },
  { arch: 'vgg16', url: 'https://download.pytorch.org/models/vgg16-397923af.pth', file: 'vgg16-397923af.pth' },
  { arch: 'mobilenet_v3_large', url: 'https://download.pytorch.org/models/mobilenet_v3_large-8738ca79.pth', file: 'mobilenet_v3_large-8738ca79.pth' },
  // 0.14 names this file efficientnet_b0_rwightman-3dd342df.pth, but its sha256 is 7f5810bc96…, so
  // the name's hash check always fails (pytorch/vision#7744); later torchvision serves the same
  // bytes under this corrected name (pytorch/vision#8036).
  { arch: 'efficientnet_b0', url: 'https://download.pytorch.org/models/efficientnet_b0_rwightman-7f5810bc.pth', file: 'efficientnet_b0_rwightman-7f5810bc.pth' },
].map((e) => Object.freeze(e as WeightsEntry)));

/** Overrides where the table's files are fetched from: `<base>/<file>` (a mirror, or a test server). */
export const WEIGHTS_BASE_URL_ENV = 'FINETORCH_WEIGHTS_BASE_URL';

/** The table's entry for an architecture. */
export function weightsEntry(arch: WeightsArch): WeightsEntry {
  const name = oneOf('arch', arch, WEIGHTS_ARCHITECTURES);
  return IMAGENET_WEIGHTS.find((e) => e.arch === name)!;
}

/**
 * The sha256 prefix a file name carries, found as torch.hub does (`-([a-f0-9]*)\.`, first match):
 * 'alexnet-owt-7be5be79.pth' -> '7be5be79'. Undefined when there is none (or it is empty).
 */
export function hashPrefixFromName(file: string): string | undefined {
  const m = /-([a-f0-9]*)\./.exec(path.basename(file));
  return m && m[1].length > 0 ? m[1] : undefined;
}

function expandUser(p: string): string {
  if (p === '~') return os.homedir();
  if (p.startsWith('~/')) return path.join(os.homedir(), p.slice(2));
  return p;
}

/**
 * PyTorch's hub checkpoint folder, by torch.hub's rules (`_get_torch_home` + get_dir):
 * `$TORCH_HOME/hub/checkpoints`, else `$XDG_CACHE_HOME/torch/hub/checkpoints`, else
 * `~/.cache/torch/hub/checkpoints`, with a leading `~` expanded. An empty variable counts as unset
 * (Python would use the empty string, i.e. a relative `hub/checkpoints`).
 */
export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const torchHome = env.TORCH_HOME || path.join(env.XDG_CACHE_HOME || '~/.cache', 'torch');
  return path.join(expandUser(torchHome), 'hub', 'checkpoints');
}

export interface EnsureWeightsOptions extends TransferOptions {
  /** Fetch `<baseUrl>/<file>` instead of download.pytorch.org (also: $FINETORCH_WEIGHTS_BASE_URL). */
  baseUrl?: string;
  /** Where the file is kept. Default hubCacheDir(). */
  cacheDir?: string;
  onProgress?: ProgressCallback;
  /** Hash cached files before trusting them (once per process and file). Default true. */
  verify?: boolean;
  /** Where the warning about a corrupt cached file goes. Default process.emitWarning. */
  warn?: (message: string) => void;
}

/** A weights file not in the table: its URL, and optionally the name to keep it under. */
export interface WeightsSpec {
  url: string;
  /** Default: the URL's last path segment. Its `-<hex>.` part, if any, is checked as a sha256 prefix. */
  file?: string;
}

const KNOWN = ['baseUrl', 'cacheDir', 'onProgress', 'verify', 'warn', 'retries', 'timeoutMs', 'retryDelayMs', 'signal'] as const;

/** Cached files already hashed in this process: path -> `size:mtimeMs:ino` when it was verified. */
const verifiedThisProcess = new Map<string, string>();

function fileStamp(stat: { size: number; mtimeMs: number; ino: number }): string {
  return `${stat.size}:${stat.mtimeMs}:${stat.ino}`;
}

/**
 * The path of the weights for `arch` (or a custom spec) in the cache, downloading them first when
 * missing or corrupt. A cached file is trusted when its sha256 starts with the prefix in its name
 * (hashed once per process); a corrupt one is replaced, with a warning.
 */
export async function ensureWeights(arch: WeightsArch | WeightsSpec, options: EnsureWeightsOptions = {}): Promise<string> {
  const o = plainObject('options', options);
  knownKeys('ensureWeights options', o, KNOWN);
  let url: string;
  let file: string;
  let baseUrl: string | undefined;
  if (typeof arch === 'object' && arch !== null) {
    const spec = plainObject('arch', arch);
    knownKeys('weights spec', spec, ['url', 'file']);
    const parsed = httpUrl('url', spec.url);
    file = spec.file === undefined ? decodeURIComponent(path.posix.basename(parsed.pathname)) : nonEmptyString('file', spec.file);
    url = parsed.href;
  } else {
    const entry = weightsEntry(arch);
    file = entry.file;
    url = entry.url;
    baseUrl = o.baseUrl !== undefined ? httpUrl('baseUrl', o.baseUrl).href : process.env[WEIGHTS_BASE_URL_ENV] || undefined;
    if (baseUrl !== undefined) {
      httpUrl(`$${WEIGHTS_BASE_URL_ENV}`, baseUrl);
      url = `${baseUrl.replace(/\/+$/, '')}/${encodeURIComponent(file)}`;
    }
  }
  if (!file || file !== path.basename(file) || file === '.' || file === '..') throw invalid('a plain file name', 'file', file);
  const cacheDir = o.cacheDir === undefined ? hubCacheDir() : nonEmptyString('cacheDir', o.cacheDir);
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') throw invalid('function', 'onProgress', o.onProgress);
  if (o.verify !== undefined && typeof o.verify !== 'boolean') throw invalid('boolean', 'verify', o.verify);
  if (o.warn !== undefined && typeof o.warn !== 'function') throw invalid('function', 'warn', o.warn);
  const warn = (o.warn as ((m: string) => void) | undefined) ?? ((m: string) => process.emitWarning(m, 'FinetorchWarning'));
  const prefix = hashPrefixFromName(file);
  const target = path.join(cacheDir, file);

  let stat: import('node:fs').Stats | undefined;
  try {
    stat = await fsp.stat(target);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  if (stat) {
    if (!stat.isFile()) throw new Error(`cannot use cached weights '${target}': not a regular file`);
    if (o.verify === false || prefix === undefined) return target;
    const key = path.resolve(target);
    if (verifiedThisProcess.get(key) === fileStamp(stat)) return target;
    const { sha256 } = await hashFile(target, ['sha256']);
    if (sha256.startsWith(prefix)) {
      verifiedThisProcess.set(key, fileStamp(stat));
      return target;
    }
    warn(`cached weights '${target}' are corrupt (sha256 ${sha256} does not start with ${prefix}); downloading them again from ${url}`);
    await fsp.rm(target, { force: true });
  }

  try {
    await downloadFile(url, target, {
      hashPrefix: prefix,
      onProgress: o.onProgress as ProgressCallback | undefined,
      retries: o.retries as number | undefined,
      timeoutMs: o.timeoutMs as number | undefined,
      retryDelayMs: o.retryDelayMs as number | undefined,
      signal: o.signal as AbortSignal | undefined,
    });
  } catch (error) {
    if (error instanceof ChecksumError && baseUrl !== undefined) {
      error.message += ` (weights base URL ${baseUrl}${o.baseUrl === undefined ? ` from $${WEIGHTS_BASE_URL_ENV}` : ''})`;
    }
    throw error;
  }
  const after = await fsp.stat(target);
  verifiedThisProcess.set(path.resolve(target), fileStamp(after));
  return target;
}
