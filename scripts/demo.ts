// npm run demo: the seed's experiment end to end on a synthetic dataset, with no downloads.
//   npm run demo [-- --amp auto|bf16|true|false] [--out DIR]
import * as path from 'path';
import { ConfigError, resolveConfig } from '../lib/experiment/config';
import { runDemo } from '../lib/experiment/demo';
import { runtimeInfo } from '../lib/runtime';

async function main(): Promise<number> {
  const info = runtimeInfo();
  console.log(`finetorch demo on libtorch ${info.torchVersion} (${info.threads} threads, CUDA ${info.cudaAvailable ? 'available' : 'not available'})`);
  const args = process.argv.slice(2);
  const value = (flag: string) => {
    const i = args.indexOf(flag);
    return i < 0 ? undefined : args[i + 1];
  };
  const ampArg = value('--amp');
  // checked as the config key is (its error names what is accepted)
  const amp = ampArg === undefined ? undefined : resolveConfig({ overrides: { amp: ampArg === 'true' ? true : ampArg === 'false' ? false : ampArg } }).amp;
  const demo = await runDemo({ quiet: !process.stderr.isTTY, amp, outputDir: value('--out') });
  console.log(`\n${demo.table}\n`);
  console.log(
    `fine-tuned ${demo.fineTuneBeatsScratch ? 'beats' : 'does NOT beat'} scratch on the same test images (paired, McNemar p < 0.05); ` +
      `${demo.results.length} runs over ${new Set(demo.results.map((r) => r.seed)).size} seeds; demo took ${demo.wallSeconds.toFixed(0)} s`,
  );
  console.log(`run folders: ${path.dirname(demo.results[0].runDir)}`);
  console.log(`report: ${demo.comparisonReport} (and report.html in each run folder)`);
  console.log('the real experiment: finetorch data download && finetorch train --phase two-stage --data data/caltech101 --weights imagenet');
  return demo.fineTuneBeatsScratch ? 0 : 1;
}

main().then(
  (code) => (process.exitCode = code),
  (error) => {
    if (error instanceof ConfigError) {
      console.error(`demo: ${error.message}`);
      process.exitCode = 2;
      return;
    }
    console.error(`demo failed: ${(error as Error).stack ?? error}`);
    process.exitCode = 1;
  },
);
