// The study's next steps at demo size (`npm run demo -- --study attention|augmentation|pruning|precision|convolution`): the
// demo's pretrained stand-in weights fine-tuned two-stage on its target classes once per variant
// and seed, then one comparison of the variants on the same test images (mean ± std over seeds,
// paired differences with McNemar's test). No download, as for the demo itself.
import * as path from 'path';
import { compareRuns, comparisonMarkdown, type Comparison } from './compare';
import { resolveConfig } from './config';
import { prepareDemo, type DemoOptions } from './demo';
import { writeComparisonReport } from './report';
import { readResults, type PhaseResult } from './results';
import { train } from './trainer';

export interface StudyVariant {
  /** The run name (and recipe in the comparison). */
  name: string;
  /** Config keys that differ from the demo's fine-tuning recipe. */
  overrides: Record<string, unknown>;
}

export const STUDIES = {
  /** ResNet-18 plain, with squeeze-and-excitation, with CBAM after each block's last BatchNorm. */
  attention: [
    { name: 'plain', overrides: {} },
    { name: 'se', overrides: { attention: 'se' } },
    { name: 'cbam', overrides: { attention: 'cbam' } },
  ],
  /** The fine-tuning stage without augmentation, with the seed's, with TrivialAugment, with MixUp/CutMix. */
  augmentation: [
    { name: 'no-augmentation', overrides: { 'augmentation.random_crop': false, 'augmentation.horizontal_flip': false, 'augmentation.color_jitter': 0 } },
    { name: 'standard', overrides: {} },
    { name: 'trivialaugment', overrides: { 'augmentation.policy': 'trivial_augment_wide' } },
    { name: 'mixup-cutmix', overrides: { 'augmentation.mixup_alpha': 0.2, 'augmentation.cutmix_alpha': 1.0 } },
  ],
  /** Fine-tuning dense, and shrinking ResNet-18's block convs by half in 2 rounds while fine-tuning. */
  pruning: [
    { name: 'dense', overrides: {} },
    { name: 'shrunk-50', overrides: { 'prune.method': 'l2_structured_shrink', 'prune.amount': 0.5, 'prune.steps': 2 } },
  ],
  /**
   * Both stages in float32 and under bf16 autocast (amp 'bf16'; native where the CPU has bf16,
   * emulated elsewhere), from the same float32 stand-in: does accuracy hold with bf16?
   */
  precision: [
    { name: 'float32', overrides: { amp: false } },
    { name: 'bf16', overrides: { amp: 'bf16' } },
  ],
  /**
   * Fine-tuning with ATen's direct convolutions and with oneDNN's Winograd ones (the trainer's
   * default where available), from the same stand-in: does accuracy hold with Winograd's rounding?
   */
  convolution: [
    { name: 'direct', overrides: { conv_algorithm: 'direct' } },
    { name: 'winograd', overrides: { conv_algorithm: 'winograd' } },
  ],
} satisfies Record<string, StudyVariant[]>;

export type StudyName = keyof typeof STUDIES;

export function isStudyName(name: string): name is StudyName {
  return Object.prototype.hasOwnProperty.call(STUDIES, name);
}

export interface StudyResult {
  study: StudyName;
  results: PhaseResult[];
  comparison: Comparison;
  /** The comparison as markdown: one row per variant's fine-tuned model, then every pair. */
  table: string;
  comparisonReport: string;
  wallSeconds: number;
}

export async function runStudy(study: StudyName, options: DemoOptions = {}): Promise<StudyResult> {
  const started = Date.now();
  const variants: StudyVariant[] = STUDIES[study];
  const { out, common, targetData, transfer, hooks, writer, group } = await prepareDemo(options);
  const seeds = options.seeds ?? [0, 1, 2];
  const results: PhaseResult[] = [];
  for (const variant of variants) {
    const config = resolveConfig({ overrides: { ...common, ...targetData, ...transfer, ...variant.overrides, seeds, run_name: variant.name } });
    results.push(...(await train(config, hooks)));
  }
  await group?.barrier();
  // the variants differ in what the fine-tuning stage does: compare its final models
  const finetuned = results.filter((r) => r.phase === 'finetune');
  const comparison = compareRuns(finetuned.map((r) => readResults(r.runDir)));
  const comparisonReport = writer ? await writeComparisonReport(finetuned.map((r) => r.runDir), out) : path.join(out, 'compare.html');
  return { study, results, comparison, table: comparisonMarkdown(comparison), comparisonReport, wallSeconds: (Date.now() - started) / 1000 };
}
