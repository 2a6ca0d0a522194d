// The child-process side of the fuzzer: loads one input at a time with its format's public loader
// and answers over IPC whether it was accepted or rejected (and how), with its memory use.
// Started by worker-process.ts as `node [flags] worker.js` (worker.ts under ts-register).
import sharp from 'sharp';
import { CACHE_FILES, CACHE_KEY, type FuzzFormat } from './formats';

class CacheRejection extends Error {}

function disposeDeep(value: unknown, seen = new Set<unknown>()): void {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  const t = value as { dispose?: () => void; disposed?: boolean; native?: unknown };
  if (typeof t.dispose === 'function' && t.native !== undefined) {
    if (!t.disposed) t.dispose();
    return;
  }
  if (value instanceof Map) for (const [k, v] of value) (disposeDeep(k, seen), disposeDeep(v, seen));
  else if (Array.isArray(value)) for (const v of value) disposeDeep(v, seen);
  else if (!Buffer.isBuffer(value) && !ArrayBuffer.isView(value)) for (const v of Object.values(value)) disposeDeep(v, seen);
}

/** Loads one input with its format's public loader; throws what the loader throws. */
export async function loadInput(format: FuzzFormat, file: string, index: number): Promise<void> {
  /* eslint-disable @typescript-eslint/no-require-imports */
  switch (format) {
    case 'zip':
    case 'legacy':
    case 'safetensors': {
      const { loadWeights } = require('../../lib/models/weights') as typeof import('../../lib/models/weights');
      const loaded = await loadWeights(file);
      disposeDeep(loaded.stateDict);
      return;
    }
    case 'checkpoint': {
      const { loadCheckpoint } = require('../../lib/training/checkpoint') as typeof import('../../lib/training/checkpoint');
      disposeDeep(await loadCheckpoint(file));
      return;
    }
    case 'jpeg':
    case 'png': {
      const { decodeImage, EVAL_DECODE, TRAIN_DECODE } = require('../../lib/data/decode') as typeof import('../../lib/data/decode');
      await decodeImage(file, index % 2 ? TRAIN_DECODE : EVAL_DECODE);
      return;
    }
    case 'yaml': {
      const { resolveConfig } = require('../../lib/experiment/config') as typeof import('../../lib/experiment/config');
      resolveConfig({ config: file });
      return;
    }
    case 'manifest': {
      const { readSplitManifest } = require('../../lib/data/splits') as typeof import('../../lib/data/splits');
      await readSplitManifest(file);
      return;
    }
    case 'cache': {
      const { readCacheFile } = require('../../lib/data/cache') as typeof import('../../lib/data/cache');
      const read = await readCacheFile(file, CACHE_KEY, CACHE_FILES);
      if (!read.ok) throw new CacheRejection(read.why);
      return;
    }
  }
  /* eslint-enable @typescript-eslint/no-require-imports */
}

export interface LoadMessage {
  type: 'load';
  id: number;
  format: FuzzFormat;
  file: string;
  index: number;
}

export interface ResultMessage {
  type: 'result';
  id: number;
  outcome: 'accepted' | 'rejected' | 'bad-error';
  message: string;
  rss: number;
  maxRss: number;
}

export function workerMain(): void {
  /* eslint-disable @typescript-eslint/no-require-imports */
  (require('../../binding') as typeof import('../../binding')).native(); // load libtorch before the first timed input
  /* eslint-enable @typescript-eslint/no-require-imports */
  sharp.cache(false); // libvips' operation cache would blur which input used the memory
  let done = 0;
  process.on('message', (msg: LoadMessage) => {
    if (msg?.type !== 'load') return;
    void (async () => {
      let outcome: ResultMessage['outcome'] = 'accepted';
      let message = '';
      try {
        await loadInput(msg.format, msg.file, msg.index);
      } catch (e) {
        if (e instanceof CacheRejection) {
          outcome = 'rejected';
          message = e.message;
        } else if (msg.format === 'cache') {
          outcome = 'bad-error';
          message = `readCacheFile threw (it must report bad content as ok:false): ${e instanceof Error ? e.stack : String(e)}`;
        } else if (!(e instanceof Error) || typeof e.message !== 'string' || e.message.trim() === '') {
          outcome = 'bad-error';
          message = `rejected with ${e instanceof Error ? `an Error with an empty message (${e.name})` : `a non-Error: ${String(e)}`}`;
        } else {
          outcome = 'rejected';
          message = `${e.name}: ${e.message}`;
        }
      }
      if (++done % 64 === 0) (global as { gc?: () => void }).gc?.();
      const result: ResultMessage = {
        type: 'result', id: msg.id, outcome, message: message.slice(0, 2000), rss: process.memoryUsage().rss,
        maxRss: process.resourceUsage().maxRSS * 1024,
      };
      process.send!(result);
    })();
  });
  process.on('disconnect', () => process.exit(0));
  process.send!({ type: 'ready' });
}

if (require.main === module) workerMain();
