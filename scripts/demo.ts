// npm run demo: the seed's experiment end to end on a synthetic dataset, with no downloads.
//   npm run demo [-- --amp auto|bf16|true|false] [--out DIR]
//                [--images-per-class N --image-size N --pretrain-epochs N --epochs N --seeds 0,1,2]
//                [--study attention|augmentation|pruning|precision|convolution]   (the study's next steps: variants compared, no scratch run)
//                [--nproc-per-node N [--nnodes M --node-rank K --master-addr A --master-port P]]
import * as path from 'path';
import { readDistributedEnv } from '../lib/distributed/env';
import { LaunchFailedError, launchWorkers, withoutLauncherOptions } from '../lib/distributed/launcher';
import { ProcessGroup } from '../lib/distributed/process-group';
import { ConfigError, resolveConfig } from '../lib/experiment/config';
import { runDemo, type DemoOptions } from '../lib/experiment/demo';
import { isStudyName, runStudy, STUDIES } from '../lib/experiment/study';
import { runtimeInfo } from '../lib/runtime';

const VALUE_FLAGS = ['--amp', '--out', '--images-per-class', '--image-size', '--pretrain-epochs', '--epochs', '--seeds', '--study'];
const LAUNCHER_FLAGS = ['--nproc-per-node', '--nnodes', '--node-rank', '--master-addr', '--master-port'];

function parse(args: string[]): Map<string, string> {
  const values = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = args[i].split(/=(.*)/s, 2);
    if (!VALUE_FLAGS.includes(flag) && !LAUNCHER_FLAGS.includes(flag)) throw new ConfigError(`unknown option '${args[i]}' (options: ${[...VALUE_FLAGS, ...LAUNCHER_FLAGS].join(', ')})`);
    const value = inline ?? args[++i];
    if (value === undefined) throw new ConfigError(`${flag} needs a value`);
    values.set(flag, value);
  }
  return values;
}

function integer(values: Map<string, string>, flag: string, min: number): number | undefined {
  const raw = values.get(flag);
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new ConfigError(`Expected an integer >= ${min} for ${flag} but received '${raw}'`);
  return n;
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const values = parse(args);
  const worker = readDistributedEnv(process.env);
  const nprocPerNode = integer(values, '--nproc-per-node', 1);
  if (!worker && nprocPerNode !== undefined) {
    // our launcher: the same demo in N workers here (and on the other --nnodes machines)
    const result = await launchWorkers({
      command: [process.execPath, ...process.execArgv, process.argv[1], ...withoutLauncherOptions(args, VALUE_FLAGS)],
      nprocPerNode,
      nnodes: integer(values, '--nnodes', 1) ?? 1,
      nodeRank: integer(values, '--node-rank', 0) ?? 0,
      masterAddr: values.get('--master-addr') ?? '127.0.0.1',
      masterPort: integer(values, '--master-port', 1) ?? 29500,
    });
    if (!result.ok) throw new LaunchFailedError(result);
    return 0;
  }
  const ampArg = values.get('--amp');
  // checked as the config key is (its error names what is accepted)
  const amp = ampArg === undefined ? undefined : resolveConfig({ overrides: { amp: ampArg === 'true' ? true : ampArg === 'false' ? false : ampArg } }).amp;
  const seedsArg = values.get('--seeds');
  const seeds = seedsArg === undefined ? undefined : seedsArg.split(',').map((s) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 0) throw new ConfigError(`Expected a comma-separated list of non-negative integers for --seeds but received '${seedsArg}'`);
    return n;
  });
  const options: DemoOptions = {
    quiet: !process.stderr.isTTY, amp, outputDir: values.get('--out'), seeds,
    imagesPerClass: integer(values, '--images-per-class', 4), imageSize: integer(values, '--image-size', 16),
    pretrainEpochs: integer(values, '--pretrain-epochs', 1), epochs: integer(values, '--epochs', 1),
  };
  const study = values.get('--study');
  if (study !== undefined && !isStudyName(study)) throw new ConfigError(`Expected one of ${Object.keys(STUDIES).join(', ')} for --study but received '${study}'`);
  const group = worker ? await ProcessGroup.fromEnv(worker, { timeoutSeconds: 60 }) : undefined;
  const rank = group?.rank ?? 0;
  const processes = group?.size ?? 1;
  const info = runtimeInfo();
  if (rank === 0) console.log(`finetorch demo on libtorch ${info.torchVersion} (${info.threads} threads, CUDA ${info.cudaAvailable ? 'available' : 'not available'})`);
  if (study !== undefined) return studyMain(study, options, group);
  let demo;
  try {
    demo = await runDemo({ ...options, group });
    await group?.barrier();
  } catch (error) {
    throw group && !group.disposed ? await group.explainFailure(error) : error;
  } finally {
    group?.dispose();
  }
  if (rank !== 0) return demo.fineTuneBeatsScratch ? 0 : 1;
  console.log(`\n${demo.table}\n`);
  console.log(
    `fine-tuned ${demo.fineTuneBeatsScratch ? 'beats' : 'does NOT beat'} scratch on the same test images (paired, McNemar p < 0.05); ` +
      `${demo.results.length} runs over ${new Set(demo.results.map((r) => r.seed)).size} seeds; demo took ${demo.wallSeconds.toFixed(0)} s` +
      (processes > 1 ? ` on ${processes} processes` : ''),
  );
  console.log(`run folders: ${path.dirname(demo.results[0].runDir)}`);
  console.log(`report: ${demo.comparisonReport} (and report.html in each run folder)`);
  console.log('the real experiment: finetorch data download && finetorch train --phase two-stage --data data/caltech101 --weights imagenet');
  return demo.fineTuneBeatsScratch ? 0 : 1;
}

async function studyMain(study: keyof typeof STUDIES, options: DemoOptions, group: ProcessGroup | undefined): Promise<number> {
  let result;
  try {
    result = await runStudy(study, { ...options, group });
    await group?.barrier();
  } catch (error) {
    throw group && !group.disposed ? await group.explainFailure(error) : error;
  } finally {
    group?.dispose();
  }
  if ((group?.rank ?? 0) !== 0) return 0;
  console.log(`\n${result.table}\n`);
  console.log(`study '${study}': ${STUDIES[study].map((v) => v.name).join(' vs ')}, ${new Set(result.results.map((r) => r.seed)).size} seeds; took ${result.wallSeconds.toFixed(0)} s`);
  console.log(`report: ${result.comparisonReport}`);
  return 0;
}

main().then(
  (code) => (process.exitCode = code),
  (error) => {
    if (error instanceof ConfigError) {
      console.error(`demo: ${error.message}`);
      process.exitCode = 2;
      return;
    }
    if (error instanceof LaunchFailedError) {
      console.error(`demo: ${error.message}`);
      process.exitCode = error.exitCode;
      return;
    }
    console.error(`demo failed: ${(error as Error).stack ?? error}`);
    process.exitCode = 1;
  },
);
