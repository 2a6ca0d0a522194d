// npm run demo: the seed's experiment end to end on a synthetic dataset, with no downloads.
import { runDemo } from '../lib/experiment/demo';
import { runtimeInfo } from '../lib/runtime';

async function main(): Promise<number> {
  const info = runtimeInfo();
  console.log(`finetorch demo on libtorch ${info.torchVersion} (${info.threads} threads, CUDA ${info.cudaAvailable ? 'available' : 'not available'})`);
  const demo = await runDemo({ quiet: !process.stderr.isTTY });
  console.log(`\n${demo.table}\n`);
  console.log(`fine-tuned ${demo.fineTuneBeatsScratch ? 'beats' : 'does NOT beat'} scratch on mean per-class accuracy; demo took ${demo.wallSeconds.toFixed(0)} s`);
  console.log(`run folders: ${demo.results.map((r) => r.runDir).join(', ')}`);
  console.log(`report: ${demo.comparisonReport} (and report.html in each run folder)`);
  console.log('the real experiment: finetorch data download && finetorch train --phase two-stage --data data/caltech101 --weights imagenet');
  return demo.fineTuneBeatsScratch ? 0 : 1;
}

main().then(
  (code) => (process.exitCode = code),
  (error) => {
    console.error(`demo failed: ${(error as Error).stack ?? error}`);
    process.exitCode = 1;
  },
);
