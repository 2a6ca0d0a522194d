// A short end-to-end run of the native addon for scripts/sanitize.sh (ASan build, or valgrind):
// tensors, a model forward and backward step, weights and checkpoints saved and loaded in every
// format, an image decode, then a few hundred fuzz inputs of each native-backed format loaded in
// this process, so that a memory error in the addon's parsers is reported by the sanitizer instead
// of passing unnoticed. Not a jest test (no .test.ts): run with
//   node -r ./test/fuzz/ts-register.js test/fuzz/sanitize-smoke.ts [INPUTS_PER_FORMAT]
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { makeInput, makeSeeds, loadInput, type FuzzFormat } from '../../scripts/fuzz';
import { createModel, loadCheckpoint, loadWeights, saveCheckpoint, saveWeights, tensor, randn } from '../../lib';

async function main(): Promise<void> {
  const perFormat = Number(process.argv[2] ?? 200);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-sanitize-'));
  try {
    const t = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
    if (t.shape.join() !== '2,3') throw new Error('tensor shape');
    const model = createModel('resnet18', { numClasses: 3 });
    const images = randn([2, 3, 64, 64]);
    const logits = await model.forward(images);
    if (logits.shape.join() !== '2,3') throw new Error(`forward gave ${logits.shape}`);
    for (const format of ['pth', 'safetensors'] as const) {
      const file = path.join(dir, `w.${format}`);
      await saveWeights(file, model.stateDict(), { format });
      const loaded = await loadWeights(file);
      if (loaded.stateDict.size !== model.stateDict().size) throw new Error(`${format}: ${loaded.stateDict.size} tensors`);
      await model.loadStateDict(loaded.stateDict, { strict: true });
    }
    await saveCheckpoint(path.join(dir, 'c.pth'), { model, epoch: 1, step: 2, config: { a: 1 } });
    const checkpoint = await loadCheckpoint(path.join(dir, 'c.pth'));
    if (checkpoint.epoch !== 1) throw new Error('checkpoint epoch');
    console.log('[smoke] tensors, forward, weights (pth, safetensors) and checkpoint round trips: ok');

    const formats: FuzzFormat[] = ['zip', 'legacy', 'safetensors', 'checkpoint', 'png', 'jpeg'];
    const seeds = await makeSeeds(path.join(dir, 'seeds'), formats);
    for (const format of formats) {
      let accepted = 0;
      for (let i = 0; i < perFormat; i++) {
        const file = path.join(dir, `in-${format}`);
        fs.writeFileSync(file, makeInput(format, i, 7, seeds[format]));
        try {
          await loadInput(format, file, i);
          accepted++;
        } catch {
          // rejections are expected; the sanitizer reports memory errors by aborting
        }
      }
      console.log(`[smoke] ${format}: ${perFormat} fuzz inputs in-process, ${accepted} accepted`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => console.log('[smoke] done'),
  (e) => {
    console.error(e);
    process.exitCode = 1;
  },
);
