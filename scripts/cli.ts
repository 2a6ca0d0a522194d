#!/usr/bin/env node
// finetorch's command line: train, test, predict, compare, report, and the two downloads.
// Exit codes: 0 done, 1 failed, 2 bad usage or configuration, 130 interrupted (SIGINT).
import { Argument, Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import * as fs from 'fs';
import * as path from 'path';
import { DataLoader } from '../lib/data/loader';
import { ImageCache } from '../lib/data/cache';
import { EVAL_DECODE } from '../lib/data/decode';
import { evalTransform } from '../lib/data/transforms';
import { AUGMENT_POLICIES } from '../lib/data/auto-augment';
import { downloadCaltech101 } from '../lib/download/caltech101';
import { progressBar } from '../lib/download/progress';
import { ensureWeights, WEIGHTS_ARCHITECTURES, type WeightsArch } from '../lib/download/weights';
import { compareRuns, comparisonMarkdown, comparisonRows } from '../lib/experiment/compare';
import { ConfigError, configsDir, readYaml, resolveConfig, type Config } from '../lib/experiment/config';
import { evaluate } from '../lib/experiment/evaluate';
import { predict } from '../lib/experiment/predict';
import { readResults } from '../lib/experiment/results';
import { loadRun, loadRunSplit } from '../lib/experiment/runs';
import { quantizeRun } from '../lib/experiment/quantize-run';
import { OBSERVERS, QUANTIZED_ENGINES } from '../lib/models/quantized';
import { writeComparisonReport, writeRunReport } from '../lib/experiment/report';
import { InterruptedError, train } from '../lib/experiment/trainer';
import { formatFindings, runDoctor } from '../lib/doctor';
import { createPredictionServer, MiB } from '../lib/serve/server';
import { resolveDevice, setNumThreads } from '../lib/runtime';
import { pct } from '../lib/utils/format';
import { ARCHITECTURES, ATTENTIONS } from '../lib/models/model';
import { exportOnnx, ONNX_OPSETS } from '../lib/export/onnx';
import { readDistributedEnv } from '../lib/distributed/env';
import { distributedSupport, ProcessGroup } from '../lib/distributed/process-group';
import { launchWorkers, LaunchFailedError, withoutLauncherOptions } from '../lib/distributed/launcher';

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`expected a positive integer, got '${value}'`);
  return n;
}

function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`expected a non-negative integer, got '${value}'`);
  return n;
}

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`expected a positive number, got '${value}'`);
  return n;
}

function nonNegativeNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`expected a non-negative number, got '${value}'`);
  return n;
}

/** --seeds 0,1,2: different non-negative integers. */
function seedList(value: string): number[] {
  const parts = value.split(',').map((v) => v.trim());
  const seeds = parts.map(Number);
  if (parts.some((v) => v === '') || seeds.some((n) => !Number.isInteger(n) || n < 0) || new Set(seeds).size !== seeds.length) {
    throw new InvalidArgumentError(`expected different non-negative integers separated by commas, got '${value}'`);
  }
  return seeds;
}

/** --set key=value (YAML value), repeatable: any config key, dotted for nested ones. */
function keyValue(value: string, previous: Record<string, unknown> = {}): Record<string, unknown> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError(`expected key=value, got '${value}'`);
  const raw = value.slice(eq + 1);
  let parsed: unknown = raw;
  try {
    parsed = JSON.parse(raw);
  } catch {
    // a bare string
  }
  return { ...previous, [value.slice(0, eq)]: parsed };
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new InvalidArgumentError(`expected a port between 1 and 65535, got '${value}'`);
  return n;
}

const kebab = (key: string) => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/**
 * `train --nproc-per-node N`: this process trains nothing; it runs the same command without the
 * launcher options in N workers and fails, naming the rank, when one of them does.
 */
async function launchTraining(opts: { nprocPerNode: number; nnodes: number; nodeRank: number; masterAddr: string; masterPort: number }, command: Command): Promise<void> {
  if (opts.nodeRank >= opts.nnodes) throw new ConfigError(`Expected --node-rank in [0, --nnodes=${opts.nnodes}) but received ${opts.nodeRank}`);
  // the argv given to parse (commander's untyped rawArgs): process.argv for the real CLI
  const argv = (command.parent as unknown as { rawArgs: string[] }).rawArgs;
  const valueFlags = command.options.filter((o) => o.required || o.optional).map((o) => o.long ?? '');
  const result = await launchWorkers({
    command: [process.execPath, ...process.execArgv, argv[1], ...withoutLauncherOptions(argv.slice(2), valueFlags)],
    nprocPerNode: opts.nprocPerNode,
    nnodes: opts.nnodes,
    nodeRank: opts.nodeRank,
    masterAddr: opts.masterAddr,
    masterPort: opts.masterPort,
  });
  if (!result.ok) throw new LaunchFailedError(result);
}

/** dist_backend 'auto': NCCL for a CUDA run where this libtorch has it, else Gloo. */
function distributedBackend(config: Config): 'gloo' | 'nccl' {
  if (config.dist_backend !== 'auto') return config.dist_backend;
  return resolveDevice(config.device).startsWith('cuda') && distributedSupport().backends.includes('nccl') ? 'nccl' : 'gloo';
}

const imagenetResolver = (quiet: boolean) => async (arch: string) =>
  ensureWeights(arch as WeightsArch, { onProgress: quiet ? undefined : progressBar(process.stderr, { name: `${arch} weights` }) });

function interruptSignal(): AbortSignal {
  const controller = new AbortController();
  process.once('SIGINT', () => {
    process.stderr.write('\nSIGINT: finishing the current step and writing the last checkpoint (Ctrl-C again to abort now)\n');
    process.once('SIGINT', () => process.exit(130));
    controller.abort();
  });
  return controller.signal;
}

export function buildProgram(): Command {
  // defaults come from configs/base.yaml (then the experiment file): show them in --help
  let base: Record<string, unknown> = {};
  try {
    base = readYaml(path.join(configsDir(), 'base.yaml'));
  } catch {
    // help still works without the file
  }
  const d = (key: string): string => {
    const value = key.split('.').reduce<unknown>((at, k) => (at as Record<string, unknown> | undefined)?.[k], base);
    return value === undefined ? '' : ` (default: ${value === null ? 'none' : String(value)})`;
  };
  const program = new Command('finetorch')
    .description('Fine-tune torchvision CNNs (AlexNet, ResNet-18) on Caltech-101 from TypeScript, over libtorch.')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

  program
    .command('train')
    .description('train one phase (or both stages) and test the best weights')
    .addOption(new Option('--phase <phase>', `training phase${d('phase')}`).choices(['feature_extract', 'finetune', 'scratch', 'two-stage']))
    .option('--config <file>', 'experiment YAML over configs/base.yaml (a path, or a name in configs/experiments)')
    .addOption(new Option('--arch <arch>', `network${d('arch')}`).choices([...ARCHITECTURES]))
    .addOption(new Option('--head <head>', `ResNet head${d('head')}`).choices(['linear', 'conv1x1']))
    .addOption(new Option('--attention <kind>', `ResNet attention in every residual block${d('attention')}`).choices([...ATTENTIONS]))
    .option('--data <root>', `dataset root (holds 101_ObjectCategories, or an ImageFolder tree)${d('data.root')}`)
    .option('--weights <weights>', `'imagenet', 'none' or a .pth/.safetensors file${d('weights')}`)
    .option('--epochs <n>', `epochs${d('epochs')}`, nonNegativeInt)
    .option('--batch-size <n>', `batch size${d('batch_size')}`, positiveInt)
    .option('--lr <rate>', `learning rate of the phase${d('learning_rate')}; finetune: finetune_lr${d('finetune_lr')}`, positiveNumber)
    .option('--device <device>', `auto, cpu, cuda or cuda:N${d('device')}`)
    .option('--seed <n>', `random seed${d('seed')}`, nonNegativeInt)
    .option('--seeds <list>', 'run the recipe once per seed, e.g. 0,1,2 (sibling run folders; compare shows mean ± std)', seedList)
    .option('--image-size <n>', `input crop size${d('image_size')}`, positiveInt)
    .addOption(new Option('--conv-algorithm <name>', `3x3 training convolutions on the CPU: Winograd where available, or ATen's direct kernels${d('conv_algorithm')}`).choices(['auto', 'direct', 'winograd']))
    .addOption(new Option('--augment-policy <policy>', `TrivialAugmentWide, RandAugment or AutoAugment after crop and flip (finetune, scratch)${d('augmentation.policy')}`).choices([...AUGMENT_POLICIES]))
    .option('--random-erasing <p>', `RandomErasing probability per image (0-1)${d('augmentation.random_erasing')}`, nonNegativeNumber)
    .option('--mixup-alpha <alpha>', `MixUp Beta(alpha, alpha); 0: off${d('augmentation.mixup_alpha')}`, nonNegativeNumber)
    .option('--cutmix-alpha <alpha>', `CutMix Beta(alpha, alpha); 0: off${d('augmentation.cutmix_alpha')}`, nonNegativeNumber)
    .option('--init <checkpoint>', 'finetune: start from this checkpoint (the feature_extract best.pth)')
    .option('--resume <run>', 'continue the run in this folder from its last checkpoint (with its saved config; --epochs may extend it)')
    .option('--out <dir>', `output folder for run folders${d('output_dir')}`)
    .option('--name <name>', 'run folder name')
    .option('--set <key=value>', 'any config key, e.g. --set data.train_per_class=15 (repeatable)', keyValue)
    .option('--quiet', 'no progress output')
    .option('--nproc-per-node <n>', 'launch this many worker processes here and train on all of them (data-parallel, as torchrun)', positiveInt)
    .option('--nnodes <n>', 'with --nproc-per-node: machines in the run, each launched with its own --node-rank', positiveInt, 1)
    .option('--node-rank <k>', "with --nproc-per-node: this machine's index, 0 to nnodes - 1", nonNegativeInt, 0)
    .option('--master-addr <addr>', "with --nproc-per-node: node 0's address, where rank 0 meets the others", '127.0.0.1')
    .option('--master-port <port>', "with --nproc-per-node: node 0's rendezvous port", port, 29500)
    .action(async (opts, command: Command) => {
      if (readDistributedEnv(process.env) === null) {
        if (opts.nprocPerNode !== undefined) return launchTraining(opts, command);
        const stray = ['nnodes', 'nodeRank', 'masterAddr', 'masterPort'].filter((key) => command.getOptionValueSource(key) === 'cli');
        if (stray.length > 0) throw new ConfigError(`--${stray.map(kebab).join(', --')} ${stray.length === 1 ? 'takes' : 'take'} effect only with --nproc-per-node`);
      } // else: this process is a worker (of torchrun, srun or our launcher), and the launcher options are not its business
      let config: Config;
      let resumeDir: string | undefined;
      if (opts.resume) {
        resumeDir = path.resolve(opts.resume);
        const saved = path.join(resumeDir, 'config.yaml');
        if (!fs.existsSync(saved)) throw new ConfigError(`--resume: '${opts.resume}' has no config.yaml: not a run folder`);
        const previous = readYaml(saved);
        // the saved configuration, with only the epoch budget changeable (to extend a run)
        config = resolveConfig({ overrides: { ...flatten(previous), epochs: opts.epochs ?? previous.epochs, quiet: opts.quiet ?? previous.quiet } });
        if (config.phase === 'two-stage') throw new ConfigError('--resume takes one phase\'s run folder');
      } else {
        // --lr is the rate of the phase that runs: finetune_lr for a finetune phase, whether the
        // phase came from --phase or from the --config file
        const overrides = (lrKey: 'learning_rate' | 'finetune_lr') => ({
          phase: opts.phase, arch: opts.arch, head: opts.head, attention: opts.attention, 'data.root': opts.data, weights: opts.weights, epochs: opts.epochs,
          batch_size: opts.batchSize, [lrKey]: opts.lr, device: opts.device, seed: opts.seed, seeds: opts.seeds, image_size: opts.imageSize,
          conv_algorithm: opts.convAlgorithm,
          'augmentation.policy': opts.augmentPolicy, 'augmentation.random_erasing': opts.randomErasing,
          'augmentation.mixup_alpha': opts.mixupAlpha, 'augmentation.cutmix_alpha': opts.cutmixAlpha,
          init_checkpoint: opts.init, output_dir: opts.out, run_name: opts.name, quiet: opts.quiet, ...(opts.set ?? {}),
        });
        config = resolveConfig({ config: opts.config, overrides: overrides('learning_rate') });
        if (opts.lr !== undefined && config.phase === 'finetune') config = resolveConfig({ config: opts.config, overrides: overrides('finetune_lr') });
      }
      // a worker of torchrun, srun or our launcher joins its run's process group first
      const worker = readDistributedEnv(process.env);
      const group = worker ? await ProcessGroup.fromEnv(worker, { timeoutSeconds: config.dist_timeout, backend: distributedBackend(config) }) : undefined;
      const rank = group?.rank ?? 0;
      let results;
      try {
        results = await train(config, { signal: interruptSignal(), resolveImagenetWeights: imagenetResolver(config.quiet), resumeDir, group });
        // rank 0 hosts the store: it leaves last
        await group?.barrier();
      } finally {
        group?.dispose();
      }
      if (rank !== 0) return;
      console.log(comparisonMarkdown(compareRuns(results.map((r) => readResults(r.runDir)))));
      for (const r of results) console.log(`run folder: ${r.runDir}`);
    });

  program
    .command('test')
    .description('evaluate a checkpoint on its run\'s saved test split: top-1, top-5, mean per-class, per-class table')
    .requiredOption('--checkpoint <file|run>', 'a checkpoint file or a run folder (uses checkpoints/best.pth)')
    .option('--data <root>', 'dataset root (default: the one the run used)')
    .option('--batch-size <n>', 'batch size', positiveInt, 32)
    .option('--json <file>', 'also write the full evaluation (confusion matrix included) as JSON')
    .option('--int8', 'evaluate the int8 model finetorch quantize wrote for the checkpoint')
    .action(async (opts) => {
      const run = await loadRun(opts.checkpoint, { int8: opts.int8 === true });
      const split = await loadRunSplit(run, opts.data);
      const decode = { ...EVAL_DECODE, resize: run.config.resize, centerCrop: run.config.image_size };
      const loader = new DataLoader(split.test, { batchSize: opts.batchSize, transform: evalTransform({ size: run.config.image_size }), cache: new ImageCache({ decode }) });
      const result = await evaluate(run.int8 ?? run.model, loader.epoch(0), run.classes);
      const pct2 = (x: number) => pct(x, 2);
      console.log(`${run.checkpoint}${run.int8 ? ` (int8, ${run.int8.engine})` : ''}: ${result.count} test images`);
      console.log(`top-1 ${pct2(result.top1)}  top-5 ${pct2(result.top5)}  mean per-class ${pct2(result.meanPerClass)}  loss ${result.loss.toFixed(4)}`);
      console.log('\n| class | accuracy | correct / images |\n|---|---:|---:|');
      for (const c of [...result.perClass].sort((a, b) => a.accuracy - b.accuracy)) console.log(`| ${c.className} | ${pct2(c.accuracy)} | ${c.correct} / ${c.count} |`);
      if (opts.json) fs.writeFileSync(opts.json, JSON.stringify(result, null, 1));
      run.model.dispose();
      run.int8?.dispose();
    });

  program
    .command('predict')
    .description('top-5 classes with probabilities for image files')
    .argument('<image...>', 'image files')
    .requiredOption('--checkpoint <file|run>', 'a checkpoint file or a run folder')
    .option('--top <k>', 'how many classes', positiveInt, 5)
    .option('--json', 'print JSON')
    .option('--int8', 'predict with the int8 model finetorch quantize wrote for the checkpoint')
    .action(async (images: string[], opts) => {
      const run = await loadRun(opts.checkpoint, { int8: opts.int8 === true });
      const predictions = await predict(run, images, opts.top);
      if (opts.json) console.log(JSON.stringify(predictions, null, 1));
      else for (const p of predictions) console.log(`${p.file}\n${p.top.map((t) => `  ${(t.probability * 100).toFixed(1).padStart(5)}%  ${t.className}`).join('\n')}`);
      run.model.dispose();
      run.int8?.dispose();
    });

  program
    .command('quantize')
    .description('int8 static quantization of a run\'s checkpoint for CPU inference (ResNets, AlexNet), calibrated on training images; writes <checkpoint>-int8.pth for test/predict --int8')
    .argument('<run>', 'a run folder (uses checkpoints/best.pth) or a checkpoint file')
    .option('--calibration <n>', 'training images the activation observers see', positiveInt, 256)
    .option('--batch-size <n>', 'calibration batch size', positiveInt, 32)
    .addOption(new Option('--observer <kind>', 'activation observer (histogram: PyTorch\'s default qconfig)').choices([...OBSERVERS]).default('histogram'))
    .addOption(new Option('--engine <name>', 'quantized engine (auto: the best this libtorch has)').choices([...QUANTIZED_ENGINES]).default('auto'))
    .option('--data <root>', 'dataset root (default: the one the run used)')
    .action(async (runArg: string, opts) => {
      const run = await loadRun(runArg);
      try {
        const result = await quantizeRun(run, { calibration: opts.calibration, batchSize: opts.batchSize, observer: opts.observer, engine: opts.engine, data: opts.data });
        console.log(`${result.file}: int8 (${result.engine}, ${result.observer} observer, ${result.calibrationImages} calibration images)`);
      } finally {
        run.model.dispose();
      }
    });

  program
    .command('compare')
    .description('the results table of finished runs (Markdown, and JSON with --json)')
    .argument('<run...>', 'run folders')
    .option('--json <file>', 'write the rows as JSON')
    .action((runs: string[], opts) => {
      const results = runs.map((r) => readResults(r));
      console.log(comparisonMarkdown(compareRuns(results)));
      if (opts.json) fs.writeFileSync(opts.json, JSON.stringify(comparisonRows(results), null, 1));
    });

  program
    .command('report')
    .description('regenerate pictures and report.html of runs from their saved logs (and compare.html for several)')
    .argument('<run...>', 'run folders')
    .option('--out <dir>', 'where compare.html goes when several runs are given', 'outputs/compare')
    .option('--no-tsne', 'skip the t-SNE picture')
    .action(async (runs: string[], opts) => {
      for (const run of runs) console.log(await writeRunReport(run, { tsne: opts.tsne, overlay: runs.filter((r) => r !== run && readResults(r).phase === 'scratch') }));
      if (runs.length > 1) console.log(await writeComparisonReport(runs, opts.out));
    });

  const weights = program.command('weights').description('pretrained weights');
  weights
    .command('download')
    .description("torchvision's ImageNet weights into the torch hub cache ($TORCH_HOME/hub/checkpoints)")
    .addArgument(new Argument('<arch>', 'network').choices([...WEIGHTS_ARCHITECTURES]))
    .action(async (arch: WeightsArch) => {
      const file = await ensureWeights(arch, { onProgress: progressBar(process.stderr, { name: path.basename(arch) }) });
      console.log(file);
    });

  const data = program.command('data').description('datasets');
  data
    .command('download')
    .description('the Caltech-101 archive, checksum verified, extracted as <root>/101_ObjectCategories')
    .option('--root <dir>', 'where to put it', 'data/caltech101')
    .option('--url <url>', 'a mirror of the .zip or .tar.gz')
    .action(async (opts) => {
      const result = await downloadCaltech101(opts.root, { url: opts.url, onProgress: progressBar(process.stderr, { name: 'caltech-101' }) });
      console.log(result.path);
    });

  program
    .command('serve')
    .description('an HTTP server for a run: POST /predict (an image) -> top-5 JSON, GET /healthz, and a page at / to drop images on')
    .argument('<run>', 'a run folder (uses checkpoints/best.pth) or a checkpoint file')
    .option('--host <host>', 'interface to listen on (0.0.0.0 for every one)', '127.0.0.1')
    .option('--port <port>', 'port (0 picks a free one)', (v: string) => {
      const n = nonNegativeInt(v);
      if (n > 65535) throw new InvalidArgumentError(`expected a port between 0 and 65535, got '${v}'`);
      return n;
    }, 8080)
    .option('--max-body-mb <n>', 'largest request body in MiB', positiveNumber, 10)
    .option('--top <k>', 'how many classes per image', positiveInt, 5)
    .option('--threads <n>', "intra-op threads of the forward passes (default: libtorch's, one per core)", positiveInt)
    .action(async (runPath: string, opts) => {
      const run = await loadRun(runPath);
      if (opts.threads !== undefined) setNumThreads(opts.threads);
      const maxBodyBytes = Math.max(1, Math.floor(opts.maxBodyMb * MiB));
      const served = await createPredictionServer(run, { host: opts.host, port: opts.port, maxBodyBytes, top: opts.top });
      console.log(`serving ${served.info.name} (${served.info.arch}, ${served.info.classes.length} classes) at ${served.url}`);
      const signal = await new Promise<NodeJS.Signals>((resolve) => {
        process.once('SIGINT', () => resolve('SIGINT'));
        process.once('SIGTERM', () => resolve('SIGTERM'));
      });
      process.stderr.write(`${signal}: closing the server\n`);
      await served.close();
      run.model.dispose();
    });

  program
    .command('doctor')
    .description('what the runtime sees (libtorch, BLAS, threads, CPU, CUDA, malloc, sharp, cached weights); exit 1 with a fix for each problem')
    .option('--json', 'print the findings and the facts behind them as JSON')
    .option('--verify', 'also check the cached weights\' sha256 (reads every file: seconds)')
    .option('--config <file>', 'check this experiment config\'s device and threads (default: configs/base.yaml)')
    .action(async (opts) => {
      const report = await runDoctor({ verify: !!opts.verify, config: opts.config });
      console.log(opts.json ? JSON.stringify(report, null, 1) : formatFindings(report.findings));
      if (report.problems > 0) throw new Error(`doctor found ${report.problems} problem${report.problems === 1 ? '' : 's'} (the fix for each is above)`);
    });

  program
    .command('export')
    .description('the network of a run as an ONNX model: eval mode, dynamic batch, class names and input normalisation in its metadata')
    .argument('<run>', 'a run folder or a checkpoint file')
    .option('--out <file>', 'the .onnx file to write (default: <run>/model.onnx, or the checkpoint\'s name with .onnx)')
    .option('--opset <n>', `ONNX opset, ${ONNX_OPSETS.min} to ${ONNX_OPSETS.max}`, (value: string) => {
      const n = Number(value);
      if (!Number.isInteger(n) || n < ONNX_OPSETS.min || n > ONNX_OPSETS.max) {
        throw new InvalidArgumentError(`expected an integer between ${ONNX_OPSETS.min} and ${ONNX_OPSETS.max}, got '${value}'`);
      }
      return n;
    }, ONNX_OPSETS.default)
    .action(async (runArg: string, opts) => {
      const run = await loadRun(runArg);
      try {
        const out: string = opts.out ?? (run.runDir ? path.join(run.runDir, 'model.onnx') : path.join(path.dirname(run.checkpoint), `${path.parse(run.checkpoint).name}.onnx`));
        const { image_size: imageSize, resize } = run.config;
        const result = await exportOnnx(run.model, out, { imageSize, resize, classNames: run.classes, opset: opts.opset });
        console.log(`${result.file}: ${run.config.arch}, ${run.classes.length} classes, input [batch, 3, ${imageSize}, ${imageSize}], opset ${result.opset}, ${(result.bytes / 1e6).toFixed(1)} MB`);
      } finally {
        run.model.dispose();
      }
    });

  return program;
}

function flatten(value: Record<string, unknown>, prefix = ''): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (v && typeof v === 'object' && !Array.isArray(v)) Object.assign(out, flatten(v as Record<string, unknown>, `${prefix}${k}.`));
    else out[`${prefix}${k}`] = v;
  }
  return out;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    if (error instanceof ConfigError) {
      process.stderr.write(`finetorch: ${error.message}\n`);
      return 2;
    }
    if (error instanceof LaunchFailedError) {
      process.stderr.write(`finetorch: ${error.message}\n`);
      return error.exitCode;
    }
    if (error instanceof InterruptedError) {
      process.stderr.write(`finetorch: ${error.message}\n`);
      return 130;
    }
    process.stderr.write(`finetorch: ${(error as Error).message}\n`);
    return 1;
  }
}

if (require.main === module) {
  main(process.argv).then((code) => {
    process.exitCode = code;
  });
}
