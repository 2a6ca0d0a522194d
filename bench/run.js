#!/usr/bin/env node
'use strict';
// `npm run bench`: finetorch against PyTorch (Debian's torch 1.13 + torchvision 0.14, run with
// /usr/bin/python3) on the same machine, threads, batches and images. Every trial runs in its own
// child process (bench/ft_trial.js, bench/py_trial.py); warm-up steps are excluded; each figure is
// the median over repeats. Results: bench/results/latest.json and one table on stdout.
// See bench/README.md for what each figure means.
//
//   node bench/run.js [--full] [--threads N] [--repeats N] [--only a,b] [--ddp] [--ddp-steps N] [--quiet-wait S] [--retries N] [--out FILE]
//
// Groups for --only: step, networks, bf16, int8, pruning, channels-last, blas, epoch, loader, augment, features, drift, and ddp (only when
// asked: --ddp is --only ddp; data-parallel on c10d, finetorch alone, its own table).
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawn, execFileSync } = require('child_process');

const ROOT = path.resolve(__dirname, '..');
const PYTHON = process.env.FT_BENCH_PYTHON || '/usr/bin/python3';
const MALLOC_TUNING = {
  MALLOC_ARENA_MAX: '1',
  GLIBC_TUNABLES: 'glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967296',
};
// PyTorch as an expert runs it on a CPU: a tuned allocator. Plain glibc malloc returns and re-maps
// the big activation buffers every step (tens of thousands of page faults per ResNet-18 step).
// Each candidate runs; the fastest is the figure's "expert" (bench/README.md).
const EXPERT_ALLOCATORS = [
  { side: 'pyGlibc', label: 'glibc tunables', env: MALLOC_TUNING },
  // jemalloc as shipped purges freed pages after 10 s of decay in the background and re-faults
  // them (16 img/s on a ResNet-18 step here); an expert turns decay off
  { side: 'pyJemalloc', label: 'jemalloc', library: '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2', env: { MALLOC_CONF: 'dirty_decay_ms:-1,muzzy_decay_ms:-1' } },
  { side: 'pyTcmalloc', label: 'tcmalloc', library: '/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4', env: {} },
];
/** The candidates this machine has (glibc always; jemalloc/tcmalloc when their Debian package is installed). */
function expertAllocators() {
  return EXPERT_ALLOCATORS.filter((a) => !a.library || fs.existsSync(a.library)).map((a) => ({ ...a, env: { ...a.env, ...(a.library ? { LD_PRELOAD: a.library } : {}) } }));
}
// what finetorch's binding sets before loading libtorch (binding/thread-pools.ts), read from
// dist/ in main(): cleared from every child's environment, and given to the diagnostic
// "PyTorch expert + finetorch's thread-pool settings"
let THREAD_POOL_DEFAULTS = {};
const GROUPS = ['step', 'networks', 'bf16', 'int8', 'pruning', 'channels-last', 'blas', 'epoch', 'loader', 'augment', 'features', 'drift', 'ddp'];
// groups a plain `npm run bench` leaves out
const ON_REQUEST = ['ddp'];

// ---- arguments -----------------------------------------------------------------------------
function parseArgs(argv) {
  const opts = { full: false, threads: os.cpus().length, repeats: null, only: null, ddp: false, ddpSteps: null, quietWait: 30, retries: 1, noiseLimit: 0.3, out: path.join(__dirname, 'results', 'latest.json') };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split('=', 2);
    const value = () => (inline !== undefined ? inline : argv[++i]);
    switch (flag) {
      case '--full': opts.full = true; break;
      case '--threads': opts.threads = Number(value()); break;
      case '--repeats': opts.repeats = Number(value()); break;
      case '--only': opts.only = value().split(',').map((s) => s.trim()).filter(Boolean); break;
      case '--ddp': opts.ddp = true; break;
      case '--ddp-steps': opts.ddpSteps = Number(value()); break;
      case '--quiet-wait': opts.quietWait = Number(value()); break;
      case '--retries': opts.retries = Number(value()); break;
      case '--out': opts.out = path.resolve(value()); break;
      case '-h': case '--help':
        process.stdout.write(fs.readFileSync(__filename, 'utf8').split('\n').slice(2, 12).map((l) => l.replace(/^\/\/ ?/, '')).join('\n') + '\n');
        process.exit(0);
        break;
      default:
        throw new Error(`unknown argument '${argv[i]}' (see --help)`);
    }
  }
  if (!Number.isInteger(opts.threads) || opts.threads < 1) throw new Error(`--threads expects a positive integer, got ${opts.threads}`);
  for (const g of opts.only ?? []) if (!GROUPS.includes(g)) throw new Error(`--only: unknown group '${g}' (groups: ${GROUPS.join(', ')})`);
  if (opts.ddpSteps !== null && (!Number.isInteger(opts.ddpSteps) || opts.ddpSteps < 1)) throw new Error(`--ddp-steps expects a positive integer, got ${opts.ddpSteps}`);
  // --ddp alone runs the ddp group alone; with --only it adds it
  if (opts.ddp) opts.only = [...new Set([...(opts.only ?? []), 'ddp'])];
  return opts;
}

// The ddp group: the demo's step (lib/experiment/demo.ts: ResNet-18 at 64², batch_size 16 per
// process) on 2 ranks, a global batch of 32 against one process with that batch; --full: 224².
// Warm-up 3: DDP's Reducer rebuilds its buckets after the first step.
const DEMO_IMAGE_SIZE = 64;
const NEXT_NETWORKS = [['efficientnet_b0', 'EfficientNet-B0'], ['mobilenet_v3_large', 'MobileNetV3-Large']];
const DDP_COMMON = { arch: 'resnet18', numClasses: 101, worldSize: 2, batchPerRank: 16, warmup: 3, allReduce: { warmup: 2, repeats: 10 }, phases: ['reducer', 'flat', 'none'], repeats: 3 };

// Small by default (a few minutes); --full is the table's real setting (224², batch 32, more repeats).
function settings(full, repeatsOverride, ddpSteps) {
  const s = full
    ? {
        step: { size: 224, batch: 32, train: { warmup: 2, steps: 6 }, eval: { warmup: 2, steps: 10 }, repeats: 3, variantRepeats: 2 },
        epoch: { images: 800, size: 224, batch: 32, epochs: 2, warmup: 2, inMemSteps: 5 },
        loader: { images: 'all', size: 224, batch: 32, epochs: 3 },
        augment: { images: 64, size: 224, repeats: 5 },
        features: { classes: 'all', size: 224, resize: 256, batch: 32, epochs: 50, measureEpochs: 3, trainPerClass: 5, testPerClass: 3 },
        drift: { full: { arch: 'resnet18', size: 32, batch: 8, steps: 2000 }, head: { steps: 2000, batch: 32, cacheRows: 512 }, warmupSteps: 200, sampleEvery: 50, maxSeconds: 300 },
        ddp: { ...DDP_COMMON, size: 224, steps: 8 },
      }
    : {
        step: { size: 112, batch: 32, train: { warmup: 2, steps: 4 }, eval: { warmup: 2, steps: 8 }, repeats: 3, variantRepeats: 1 },
        // 3 later epochs (their median): one 4-step epoch swung the ratio from 1.11 to 1.63 across runs
        epoch: { images: 128, size: 224, batch: 32, epochs: 4, warmup: 1, inMemSteps: 3 },
        loader: { images: 256, size: 224, batch: 32, epochs: 3 },
        augment: { images: 32, size: 224, repeats: 3 },
        features: { classes: 20, size: 112, resize: 128, batch: 32, epochs: 50, measureEpochs: 3, trainPerClass: 5, testPerClass: 3 },
        drift: { full: { arch: 'resnet18', size: 32, batch: 8, steps: 2000 }, head: { steps: 2000, batch: 32, cacheRows: 512 }, warmupSteps: 200, sampleEvery: 50, maxSeconds: 150 },
        ddp: { ...DDP_COMMON, size: DEMO_IMAGE_SIZE, steps: 20 },
      };
  if (repeatsOverride) {
    s.step.repeats = repeatsOverride;
    s.ddp.repeats = repeatsOverride;
  }
  if (ddpSteps) s.ddp.steps = ddpSteps;
  return s;
}

// ---- machine and process measurement -----------------------------------------------------------
function cpuTimes() {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = line[3] + (line[4] || 0);
  const total = line.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Cores' worth of CPU busy over `ms` (whole machine). */
async function machineLoad(ms = 1000) {
  const a = cpuTimes();
  await sleep(ms);
  const b = cpuTimes();
  return (os.cpus().length * (b.busy - a.busy)) / Math.max(1, b.total - a.total);
}

function readProcStat(pid) {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(fields[1]), cpuTicks: Number(fields[11]) + Number(fields[12]) };
  } catch {
    return null;
  }
}

function processTree(root) {
  const children = new Map();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = readProcStat(name);
    if (!st) continue;
    if (!children.has(st.ppid)) children.set(st.ppid, []);
    children.get(st.ppid).push(Number(name));
  }
  const out = [root];
  for (let i = 0; i < out.length; i++) out.push(...(children.get(out[i]) ?? []));
  return out;
}

function pssKB(pid) {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

// ---- running one trial --------------------------------------------------------------------------
// what to clean up when the bench is interrupted: the running child or ranks and the temporary folder
const current = { child: null, ranks: [], tmp: null };
function killRanks() {
  for (const rank of current.ranks) if (rank.exitCode === null && rank.signalCode === null) rank.kill('SIGKILL');
}
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    if (current.child) current.child.kill('SIGKILL');
    killRanks();
    if (current.tmp) fs.rmSync(current.tmp, { recursive: true, force: true });
    process.stderr.write(`bench interrupted (${signal})\n`);
    process.exit(130);
  });
}
const TICKS = 100; // USER_HZ

function childEnv(extra) {
  const env = { ...process.env };
  // every side starts from the same clean environment; a trial adds only what it names
  for (const k of [...Object.keys(MALLOC_TUNING), ...Object.keys(THREAD_POOL_DEFAULTS), 'MALLOC_CONF', 'OMP_WAIT_POLICY', 'LD_PRELOAD', 'OMP_NUM_THREADS', 'MKL_NUM_THREADS']) delete env[k];
  return { ...env, ...extra };
}

async function waitQuiet(opts, log) {
  const limit = Date.now() + opts.quietWait * 1000;
  let load = await machineLoad(700);
  let waited = false;
  while (load > 0.35 && Date.now() < limit) {
    if (!waited) log(`    (machine busy: ${load.toFixed(2)} cores in use by other processes; waiting up to ${opts.quietWait} s)`);
    waited = true;
    await sleep(2000);
    load = await machineLoad(700);
  }
  return load;
}

/**
 * Runs one child; samples its process tree (CPU, and PSS when asked) every `interval` ms. Resolves
 * with the child's BENCH_RESULT plus wall time, tree CPU, other processes' CPU and peak tree PSS.
 */
async function runChild(trial, opts, log) {
  const loadBefore = await waitQuiet(opts, log);
  const [cmd, args] = trial.side.startsWith('py') ? [PYTHON, [path.join(__dirname, 'py_trial.py'), JSON.stringify(trial.spec)]] : [process.execPath, [path.join(__dirname, 'ft_trial.js'), JSON.stringify(trial.spec)]];
  const started = Date.now();
  const cpu0 = cpuTimes();
  const child = spawn(cmd, args, { cwd: ROOT, env: childEnv(trial.env ?? {}), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const cpuByPid = new Map();
  let peakPssKB = 0;
  current.child = child;
  // sampling costs CPU (smaps_rollup walks page tables): once a second is enough for peaks of
  // processes that live tens of seconds, and keeps this process's share near 1% of a core
  const sample = () => {
    const tree = processTree(child.pid);
    for (const pid of tree) {
      const st = readProcStat(pid);
      if (st) cpuByPid.set(pid, st.cpuTicks);
    }
    if (trial.pss) peakPssKB = Math.max(peakPssKB, tree.reduce((a, pid) => a + pssKB(pid), 0));
  };
  const timer = setInterval(sample, 1000);
  const code = await new Promise((resolve) => child.on('close', resolve));
  clearInterval(timer);
  current.child = null;
  const wall = (Date.now() - started) / 1000;
  const cpu1 = cpuTimes();
  const line = stdout.split('\n').find((l) => l.startsWith('BENCH_RESULT '));
  if (code !== 0 || !line) {
    throw new Error(`${trial.name} [${trial.side}] failed (exit ${code}):\n${stderr.split('\n').slice(-25).join('\n')}`);
  }
  const result = JSON.parse(line.slice('BENCH_RESULT '.length));
  const cores = os.cpus().length;
  const machineCoresBusy = (cores * (cpu1.busy - cpu0.busy)) / Math.max(1, cpu1.total - cpu0.total);
  // the child's own CPU as it reported it at exit (sampling misses the last interval), plus its
  // descendants' (DataLoader workers) as last sampled
  const sampledDescendants = [...cpuByPid.entries()].filter(([pid]) => pid !== child.pid).reduce((a, [, t]) => a + t, 0) / TICKS;
  const treeCpuSeconds = Math.max(result.cpuSeconds ?? 0, (cpuByPid.get(child.pid) ?? 0) / TICKS) + sampledDescendants;
  return {
    ...result,
    wallSeconds: wall,
    treeCpuSeconds,
    // cores' worth of CPU used by other processes while this trial ran (noise indicator)
    otherCores: Math.max(0, machineCoresBusy - treeCpuSeconds / wall),
    loadBefore,
    ...(trial.pss ? { peakTreePssMB: peakPssKB / 1024 } : {}),
  };
}


/**
 * Runs one trial of `trial.ranks` processes of bench/ddp_trial.js with torchrun's environment on a
 * free loopback port. When one rank fails the others are stopped (they would wait for it until
 * the group's timeout). Resolves with rank 0's BENCH_RESULT plus wall time, the ranks' CPU and
 * other processes' CPU.
 */
async function runRanks(trial, opts, log) {
  const loadBefore = await waitQuiet(opts, log);
  const port = await require(path.join(ROOT, 'dist', 'lib')).freePort();
  const started = Date.now();
  const cpu0 = cpuTimes();
  const worldSize = trial.ranks;
  current.ranks = Array.from({ length: worldSize }, (_, rank) => spawn(process.execPath, [path.join(__dirname, 'ddp_trial.js'), JSON.stringify(trial.spec)], {
    cwd: ROOT,
    env: childEnv({
      ...trial.env,
      RANK: String(rank), WORLD_SIZE: String(worldSize), LOCAL_RANK: String(rank), LOCAL_WORLD_SIZE: String(worldSize), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port),
    }),
    stdio: ['ignore', 'pipe', 'pipe'],
  }));
  const exits = await Promise.all(current.ranks.map((child, rank) => new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code, signal) => {
      if (code !== 0) killRanks();
      resolve({ rank, code, signal, stdout, stderr });
    });
  })));
  current.ranks = [];
  const wall = (Date.now() - started) / 1000;
  const cpu1 = cpuTimes();
  const failed = exits.filter((e) => e.code !== 0 || !e.stdout.includes('BENCH_RESULT '));
  if (failed.length > 0) {
    // the first to fail says why; the others were stopped because of it
    const first = failed.find((e) => e.code !== 0 && e.signal === null) ?? failed[0];
    throw new Error(`${trial.name} [${trial.side}] rank ${first.rank} failed (exit ${first.code ?? first.signal}):\n${first.stderr.split('\n').slice(-25).join('\n')}`);
  }
  const results = exits.map((e) => JSON.parse(e.stdout.split('\n').find((l) => l.startsWith('BENCH_RESULT ')).slice('BENCH_RESULT '.length)));
  const cores = os.cpus().length;
  const machineCoresBusy = (cores * (cpu1.busy - cpu0.busy)) / Math.max(1, cpu1.total - cpu0.total);
  const treeCpuSeconds = results.reduce((a, r) => a + r.cpuSeconds, 0);
  return {
    ...results[0],
    rankCpuSeconds: results.map((r) => r.cpuSeconds),
    rankPeakRssMB: results.map((r) => r.peakRssMB),
    wallSeconds: wall,
    treeCpuSeconds,
    otherCores: Math.max(0, machineCoresBusy - treeCpuSeconds / wall),
    loadBefore,
  };
}

// ---- the data -----------------------------------------------------------------------------------
function evenlySpaced(samples, n) {
  if (n === 'all' || n >= samples.length) return samples.slice();
  const out = [];
  for (let i = 0; i < n; i++) out.push(samples[Math.floor((i * samples.length) / n)]);
  return out;
}

async function prepareData(ft, s, tmp, log) {
  // CALTECH101_DIR, else the mini set beside the checkout (the layout CI and the sessions have)
  const beside = path.resolve(__dirname, '..', '..', 'shared', 'data', 'caltech101-mini');
  const root = process.env.CALTECH101_DIR || (fs.existsSync(beside) ? beside : undefined);
  if (!root || !fs.existsSync(root)) return { missing: `set CALTECH101_DIR to a folder holding 101_ObjectCategories (none at ${beside})` };
  const scan = await ft.scanDataset(root, { warn: () => undefined });
  // the same bytes for both sides: read every file once so the page cache is warm for both
  for (const sm of scan.samples) fs.readFileSync(sm.path);
  const write = (name, samples) => {
    const file = path.join(tmp, name);
    fs.writeFileSync(file, JSON.stringify(samples.map((x) => ({ path: x.path, label: x.label }))));
    return file;
  };
  const epochFiles = evenlySpaced(scan.samples, s.epoch.images);
  const loaderFiles = evenlySpaced(scan.samples, s.loader.images);
  // feature_extract: the whole tree, or a tree of the first N class folders (symbolic links)
  let featureRoot = root;
  if (s.features.classes !== 'all') {
    featureRoot = path.join(tmp, 'subset');
    const dir = path.join(featureRoot, '101_ObjectCategories');
    fs.mkdirSync(dir, { recursive: true });
    for (const c of scan.classes.slice(0, s.features.classes)) fs.symlinkSync(path.join(scan.root, c), path.join(dir, c));
  }
  log(`data: ${scan.root} (${scan.classes.length} classes, ${scan.samples.length} images); epoch ${epochFiles.length}, loader ${loaderFiles.length} images`);
  return {
    root,
    imageRoot: scan.root,
    numClasses: scan.classes.length,
    totalImages: scan.samples.length,
    epochFiles: write('epoch-files.json', epochFiles),
    epochCount: epochFiles.length,
    loaderFiles: write('loader-files.json', loaderFiles),
    loaderCount: loaderFiles.length,
    featureRoot,
  };
}

/** Reference (netlib) BLAS for the AlexNet comparison, preloaded into both sides. */
function referenceBlas(tmp) {
  const candidates = [process.env.FT_BENCH_REFERENCE_BLAS, '/usr/lib/x86_64-linux-gnu/blas/libblas.so.3'].filter(Boolean);
  for (const c of candidates) if (fs.existsSync(c)) return c;
  try {
    const debs = fs.readdirSync('/var/cache/apt/archives').filter((f) => /^libblas3_.*\.deb$/.test(f));
    if (debs.length === 0) return null;
    const dir = path.join(tmp, 'refblas');
    execFileSync('dpkg-deb', ['-x', path.join('/var/cache/apt/archives', debs[0]), dir]);
    const lib = path.join(dir, 'usr/lib/x86_64-linux-gnu/blas/libblas.so.3');
    return fs.existsSync(lib) ? lib : null;
  } catch {
    return null;
  }
}

// ---- statistics and formatting ----------------------------------------------------------------
function median(values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

const fmt = (x, digits = 2) => (Number.isFinite(x) ? (Math.abs(x) >= 1000 ? x.toFixed(0) : x.toFixed(digits)) : '—');

function table(rows, headers) {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i] ?? '').length)));
  const line = (cells) => `| ${cells.map((c, i) => String(c ?? '').padEnd(widths[i])).join(' | ')} |`;
  return [line(headers), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

// ---- main -----------------------------------------------------------------------------------------
async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const s = settings(opts.full, opts.repeats, opts.ddpSteps);
  const want = (g) => (opts.only ? opts.only.includes(g) : !ON_REQUEST.includes(g));
  const log = (line) => process.stderr.write(`${line}\n`);

  const distIndex = path.join(ROOT, 'dist', 'lib', 'index.js');
  if (!fs.existsSync(distIndex)) throw new Error('dist/ is missing: run `npx tsc -p tsconfig.json` (npm run build:ts) first');
  const newest = (dir) => fs.readdirSync(dir, { withFileTypes: true, recursive: true }).filter((e) => e.isFile() && e.name.endsWith('.ts')).reduce((m, e) => Math.max(m, fs.statSync(path.join(e.parentPath ?? e.path, e.name)).mtimeMs), 0);
  if (newest(path.join(ROOT, 'lib')) > fs.statSync(distIndex).mtimeMs + 1000) log('warning: lib/ has changes newer than dist/: run `npx tsc -p tsconfig.json` to bench the current code');
  const ft = require(path.join(ROOT, 'dist', 'lib'));
  THREAD_POOL_DEFAULTS = require(path.join(ROOT, 'dist', 'binding')).THREAD_POOL_DEFAULTS;

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-bench-'));
  current.tmp = tmp;
  const info = ft.runtimeInfo();
  // the ddp group is finetorch alone: PyTorch is only needed by the others
  const needsPython = GROUPS.some((g) => g !== 'ddp' && want(g));
  const pyVersions = needsPython ? execFileSync(PYTHON, ['-c', 'import torch, torchvision; print(torch.__version__, torchvision.__version__)'], { encoding: 'utf8' }).trim().split(' ') : ['not run', 'not run'];
  const meta = {
    date: new Date().toISOString(),
    mode: opts.full ? 'full' : 'default',
    cores: os.cpus().length,
    cpu: os.cpus()[0].model,
    memoryGB: +(os.totalmem() / 2 ** 30).toFixed(1),
    threads: opts.threads,
    libtorch: info.torchVersion,
    pytorch: pyVersions[0],
    torchvision: pyVersions[1],
    node: process.version,
    blas: (() => {
      try {
        return fs.realpathSync('/usr/lib/x86_64-linux-gnu/libblas.so.3');
      } catch {
        return 'unknown';
      }
    })(),
    mallocTuning: MALLOC_TUNING,
    expertAllocators: expertAllocators().map((x) => ({ label: x.label, env: x.env })),
    // what finetorch's binding set before loading libtorch, or the user's own values
    finetorchThreadPools: info.threadPools,
    settings: s,
  };
  log(`finetorch bench (${meta.mode}): ${meta.cores} cores, ${opts.threads} threads, libtorch ${meta.libtorch}, PyTorch ${meta.pytorch}`);

  const data = want('epoch') || want('loader') || want('features') ? await prepareData(ft, s, tmp, log) : { missing: 'not requested' };
  const refBlas = want('blas') ? referenceBlas(tmp) : null;
  const threads = opts.threads;
  const trials = [];
  const results = {};
  const add = (name, side, spec, extra = {}) => trials.push({ name, side, spec: { threads, seed: 0, ...spec }, ...extra });
  const tuned = { env: MALLOC_TUNING };
  const experts = expertAllocators();
  const winograd = info.winograd?.available === true;
  const addExperts = (name, spec, extra = {}) => {
    for (const a of experts) add(name, a.side, spec, { ...extra, env: a.env });
  };
  // diagnostic: does PyTorch gain as much from the thread-pool settings finetorch applies itself?
  // (with jemalloc or tcmalloc where installed: glibc cannot keep AlexNet's 151 MB gradient blocks,
  // its mmap threshold stops at 32 MiB)
  const threadsAllocator = experts.find((a) => a.library) ?? experts[0];
  const withThreadSettings = { env: { ...threadsAllocator.env, ...THREAD_POOL_DEFAULTS } };

  // in-memory steps: every repeat of every side in its own process, sides interleaved
  const st = s.step;
  if (want('step')) {
    for (const mode of ['train', 'eval']) {
      for (const arch of ['resnet18', 'alexnet']) {
        const spec = { kind: 'step', arch, mode, size: st.size, batch: st.batch, numClasses: 101, ...st[mode] };
        for (let r = 0; r < st.repeats; r++) {
          add(`${arch}-${mode}`, 'py', spec);
          addExperts(`${arch}-${mode}`, spec);
          add(`${arch}-${mode}`, 'ft', spec);
          // ResNet-18 training with the trainer's Winograd convolutions (conv_algorithm auto), where this build has them
          if (winograd && arch === 'resnet18' && mode === 'train') add(`${arch}-${mode}`, 'ftWino', { ...spec, convAlgorithm: 'winograd' });
          // finetorch with malloc tuned by the environment too (its block cache makes this moot): --full only
          if (opts.full) add(`${arch}-${mode}`, 'ftTuned', spec, tuned);
        }
        for (let r = 0; r < st.variantRepeats; r++) add(`${arch}-${mode}`, 'pyThreads', spec, withThreadSettings);
      }
    }
  }
  // the study's next networks (issue 18): EfficientNet-B0 and MobileNetV3-Large at the step figures' settings
  if (want('networks')) {
    for (const mode of ['train', 'eval']) {
      for (const arch of NEXT_NETWORKS.map(([a]) => a)) {
        const spec = { kind: 'step', arch, mode, size: st.size, batch: st.batch, numClasses: 101, ...st[mode] };
        for (let r = 0; r < st.repeats; r++) {
          add(`${arch}-${mode}`, 'py', spec);
          addExperts(`${arch}-${mode}`, spec);
          add(`${arch}-${mode}`, 'ft', spec);
          // finetorch computes in channels-last on the CPU: PyTorch too, with the expert's allocator
          add(`${arch}-${mode}`, 'pyCl', { ...spec, channelsLast: true }, { env: threadsAllocator.env });
        }
      }
    }
  }
  // bf16 autocast on the CPU (torch.autocast('cpu', bfloat16) vs the step's amp 'bf16'): ResNet-18
  // train/eval at the step figures' settings, every side; fp32 ResNet-18 interleaved in the same
  // processes' rounds (unless the step group measures it) so each side's bf16 speed-up comes from
  // one run. AlexNet bf16 and PyTorch bf16 with channels_last are cheaper diagnostics.
  if (want('bf16')) {
    for (let r = 0; r < st.repeats; r++) {
      for (const mode of ['train', 'eval']) {
        const spec = { kind: 'step', arch: 'resnet18', mode, size: st.size, batch: st.batch, numClasses: 101, ...st[mode] };
        if (!want('step')) {
          add(`resnet18-${mode}`, 'py', spec);
          addExperts(`resnet18-${mode}`, spec);
          add(`resnet18-${mode}`, 'ft', spec);
        }
        add(`resnet18-${mode}-bf16`, 'py', { ...spec, amp: 'bf16' });
        addExperts(`resnet18-${mode}-bf16`, { ...spec, amp: 'bf16' });
        add(`resnet18-${mode}-bf16`, 'ft', { ...spec, amp: 'bf16' });
      }
    }
    for (let r = 0; r < st.variantRepeats; r++) {
      for (const mode of ['train', 'eval']) {
        const spec = { kind: 'step', mode, size: st.size, batch: st.batch, numClasses: 101, ...st[mode], amp: 'bf16' };
        // oneDNN's bf16 kernels want NHWC; finetorch computes channels-last on the CPU anyway
        add(`resnet18-${mode}-bf16`, 'pyCl', { ...spec, arch: 'resnet18', channelsLast: true }, { env: threadsAllocator.env });
        // the same for finetorch: channels-last weights too (Model.channelsLast(), as the trainer does)
        add(`resnet18-${mode}-bf16`, 'ftCl', { ...spec, arch: 'resnet18', channelsLast: true });
        add(`alexnet-${mode}-bf16`, 'py', { ...spec, arch: 'alexnet' });
        addExperts(`alexnet-${mode}-bf16`, { ...spec, arch: 'alexnet' });
        add(`alexnet-${mode}-bf16`, 'ft', { ...spec, arch: 'alexnet' });
      }
    }
  }
  // int8 static quantization of ResNet-18 (issue 19): eval at the step figures' settings, each
  // side's int8 and its own float forward in one process
  if (want('int8')) {
    const spec = { kind: 'int8', arch: 'resnet18', size: st.size, batch: st.batch, numClasses: 101, ...st.eval };
    for (let r = 0; r < st.repeats; r++) {
      add('resnet18-int8', 'py', spec);
      addExperts('resnet18-int8', spec);
      add('resnet18-int8', 'ft', spec);
    }
  }
  // structured channel pruning (issue 19): dense vs half of each block's inner channels removed,
  // finetorch only (PyTorch's prune masks, it does not remove channels)
  if (want('pruning')) {
    for (let r = 0; r < st.repeats; r++) add('resnet18-shrink', 'ft', { kind: 'shrink', arch: 'resnet18', size: st.size, batch: st.batch, numClasses: 1000, amount: 0.5, ...st.eval });
  }
  if (want('channels-last')) {
    for (const mode of ['train', 'eval']) {
      const spec = { kind: 'step', arch: 'resnet18', mode, size: st.size, batch: st.batch, numClasses: 101, ...st[mode], channelsLast: true };
      for (let r = 0; r < st.variantRepeats; r++) {
        add(`resnet18-${mode}-cl`, 'py', spec);
        add(`resnet18-${mode}-cl`, 'ft', spec);
        if (!want('step')) {
          add(`resnet18-${mode}`, 'py', { ...spec, channelsLast: false });
          add(`resnet18-${mode}`, 'ft', { ...spec, channelsLast: false });
        }
      }
    }
  }
  if (want('blas') && refBlas) {
    const spec = { kind: 'step', arch: 'alexnet', mode: 'train', size: st.size, batch: st.batch, numClasses: 101, ...st.train };
    for (let r = 0; r < st.variantRepeats; r++) {
      add('alexnet-train-refblas', 'py', spec, { env: { LD_PRELOAD: refBlas } });
      add('alexnet-train-refblas', 'ft', spec, { env: { LD_PRELOAD: refBlas } });
      if (!want('step')) {
        add('alexnet-train', 'py', spec);
        add('alexnet-train', 'ft', spec);
      }
    }
  }
  if (!data.missing) {
    const common = { imageRoot: data.imageRoot, numClasses: data.numClasses, workers: os.cpus().length };
    if (want('epoch')) {
      const spec = { kind: 'epoch', filesJson: data.epochFiles, ...common, ...s.epoch };
      add('epoch', 'py', spec, { pss: true });
      addExperts('epoch', spec, { pss: true });
      add('epoch', 'ft', spec, { pss: true });
      // the trainer's epoch uses Winograd convolutions where available: the same epoch with ATen's direct ones
      if (winograd) add('epoch', 'ftDirect', { ...spec, convAlgorithm: 'direct' });
      if (opts.full) add('epoch', 'ftTuned', spec, { pss: true, ...tuned });
      if (want('bf16')) {
        // the same epoch under bf16 autocast on both sides (--only epoch,bf16)
        add('epoch-bf16', 'py', { ...spec, amp: 'bf16' });
        addExperts('epoch-bf16', { ...spec, amp: 'bf16' });
        add('epoch-bf16', 'ft', { ...spec, amp: 'bf16' });
      }
    }
    if (want('loader')) {
      const spec = { kind: 'loader', filesJson: data.loaderFiles, ...common, ...s.loader };
      add('loader', 'py', spec, { pss: true });
      addExperts('loader', spec, { pss: true });
      add('loader', 'ft', spec, { pss: true });
    }
    if (want('features')) {
      const f = s.features;
      const splitOut = path.join(tmp, 'features-split.json');
      const spec = { kind: 'features', lr: 1e-3, weightDecay: 1e-4, workers: os.cpus().length, ...f };
      add('features', 'ft', { ...spec, root: data.featureRoot, tmpDir: tmp, splitOut }, { pss: true });
      add('features', 'py', { ...spec, splitJson: splitOut }, { pss: true });
    }
  }
  if (want('augment')) add('augment', 'ft', { kind: 'augment', ...s.augment, threads: 1 });
  if (want('drift')) {
    const d = s.drift;
    const base = { kind: 'drift', warmupSteps: d.warmupSteps, sampleEvery: d.sampleEvery, maxSeconds: d.maxSeconds, numClasses: 101 };
    add('drift-full', 'ft', { ...base, ...d.full });
    add('drift-head', 'ft', { ...base, arch: 'resnet18', headOnly: true, ...d.head });
    if (opts.full) add('drift-full', 'ftTuned', { ...base, ...d.full }, tuned);
  }

  // data-parallel on c10d: the demo's step on one process with as many threads as there are ranks,
  // against that many processes of 1 thread each (DDP's Reducer, flat buckets after backward, no
  // gradient sync) and the all-reduce of the gradients' size; one pair of trials per repeat
  if (want('ddp')) {
    const d = s.ddp;
    const globalBatch = d.batchPerRank * d.worldSize;
    for (let r = 0; r < d.repeats; r++) {
      add('ddp-1proc', 'ft', { kind: 'step', arch: d.arch, mode: 'train', size: d.size, batch: globalBatch, numClasses: d.numClasses, channelsLast: true, warmup: d.warmup, steps: d.steps, threads: d.worldSize });
      // alternate which gradient sync goes first, so neither always runs on the fresher process
      const phases = r % 2 === 0 ? d.phases : [...d.phases].reverse();
      add('ddp', 'ranks', { arch: d.arch, numClasses: d.numClasses, size: d.size, batchPerRank: d.batchPerRank, warmup: d.warmup, steps: d.steps, phases, allReduce: d.allReduce, threads: 1 }, { ranks: d.worldSize });
    }
  }

  const started = Date.now();
  for (let i = 0; i < trials.length; i++) {
    const t = trials[i];
    const run = t.ranks ? runRanks : runChild;
    let r = await run(t, opts, log);
    // other processes took CPU during the trial: run it again (up to --retries times), keep the cleanest
    for (let attempt = 0; attempt < opts.retries && r.otherCores > opts.noiseLimit; attempt++) {
      log(`    other processes used ${fmt(r.otherCores, 2)} cores during ${t.name} [${t.side}]: running it again`);
      const again = await run(t, opts, log);
      if (again.otherCores < r.otherCores) r = { ...again, attempts: attempt + 2 };
    }
    (results[t.name] ??= {})[t.side] ??= [];
    results[t.name][t.side].push(r);
    const headline = r.imgPerSec !== undefined ? `${fmt(r.imgPerSec, 1)} img/s` : r.totalSeconds !== undefined ? `${fmt(r.totalSeconds, 1)} s` : r.driftMB !== undefined ? `drift ${fmt(r.driftMB, 1)} MB` : r.epochs ? `${r.epochs.map((e) => fmt(e.imgPerSec, 1)).join(' / ')} img/s` : '';
    log(`[${i + 1}/${trials.length}] ${t.name} ${t.side}: ${headline}  (wall ${fmt(r.wallSeconds, 1)} s, peak RSS ${fmt(r.peakRssMB, 0)} MB${r.otherCores > 0.15 ? `, other processes used ${fmt(r.otherCores, 2)} cores` : ''})`);
  }

  // ---- figures --------------------------------------------------------------------------------
  const figures = [];
  const pick = (name, side) => results[name]?.[side] ?? [];
  const med = (name, side, f) => median(pick(name, side).map(f));
  // how disturbed a figure's trials were: [trials where other processes used > 0.15 cores, trials, the most cores]
  const noisy = (...names) => {
    const all = names.flatMap((n) => Object.values(results[n] ?? {}).flat().map((r) => r.otherCores));
    return { disturbed: all.filter((x) => x > 0.15).length, of: all.length, max: Math.max(0, ...all) };
  };
  const fig = (f) => figures.push({ noise: { disturbed: 0, of: 0, max: 0 }, ...f });
  const ips = (r) => r.imgPerSec;
  // PyTorch as an expert runs it: of the allocator candidates, the one with the best median
  const expert = (name, f, lowerIsBetter = false) => {
    let best = { value: NaN, allocator: null };
    for (const a of experts) {
      const v = med(name, a.side, f);
      if (Number.isFinite(v) && (!Number.isFinite(best.value) || (lowerIsBetter ? v < best.value : v > best.value))) best = { value: v, allocator: a.label };
    }
    return best;
  };
  const res = `${st.size}², batch ${st.batch}`;
  // per-step process counters of a step figure: PyTorch, its expert allocator, finetorch
  const perStepCounters = (name, e) => ['py', experts.find((x) => x.label === e.allocator)?.side, 'ft'].filter(Boolean).map((side) => ({
    side: side === 'py' ? 'PyTorch' : side === 'ft' ? 'finetorch' : `PyTorch ${e.allocator}`,
    faults: med(name, side, (r) => r.minorFaultsPerStep),
    vcsw: med(name, side, (r) => r.voluntaryCtxSwitchesPerStep),
    ivcsw: med(name, side, (r) => r.involuntaryCtxSwitchesPerStep),
    cpu: med(name, side, (r) => r.userCpuPerStep + r.systemCpuPerStep),
  }));

  for (const [mode, label] of [['train', 'train step'], ['eval', 'eval (no grad)']]) {
    for (const [arch, archName] of [['resnet18', 'ResNet-18'], ['alexnet', 'AlexNet'], ...NEXT_NETWORKS]) {
      const name = `${arch}-${mode}`;
      if (!results[name]) continue;
      const py = med(name, 'py', ips);
      const f = med(name, 'ft', ips);
      const t = med(name, 'ftTuned', ips);
      const e = expert(name, ips);
      fig({
        id: `${name}`, figure: `${archName} ${label}, ${res}, in-memory: img/s`, unit: 'img/s', pytorch: py, finetorch: f, ratio: f / py,
        pytorchExpert: e.value, expertAllocator: e.allocator, ratioExpert: f / e.value,
        goal: '≥ 1.00 × expert', met: f / e.value >= 1, finetorchTuned: t, ratioTuned: t / py, pytorchThreads: med(name, 'pyThreads', ips), noise: noisy(name),
        perStep: perStepCounters(name, e),
        ...(results[name].ftWino ? { finetorchWinograd: med(name, 'ftWino', ips), ratioExpertWinograd: med(name, 'ftWino', ips) / e.value } : {}),
        ...(NEXT_NETWORKS.some(([a]) => a === arch) ? { pytorchChannelsLast: med(name, 'pyCl', ips), ratioChannelsLast: f / med(name, 'pyCl', ips) } : {}),
      });
    }
  }
  // bf16 figures: ResNet-18 (the goal) first, then AlexNet
  for (const [arch, archName] of [['resnet18', 'ResNet-18'], ['alexnet', 'AlexNet']]) {
    for (const [mode, label] of [['train', 'train step'], ['eval', 'eval (no grad)']]) {
      const name = `${arch}-${mode}-bf16`;
      if (!results[name]) continue;
      const py = med(name, 'py', ips);
      const f = med(name, 'ft', ips);
      const e = expert(name, ips);
      // each side's fp32 figure of this run (the step group's, or the bf16 group's own rounds)
      const base = `${arch}-${mode}`;
      const eBase = expert(base, ips);
      const goal = arch === 'resnet18' ? '≥ 1.00 × expert' : 'info';
      fig({
        id: name, figure: `${archName} ${label}, bf16 autocast, ${res}, in-memory: img/s`, unit: 'img/s', pytorch: py, finetorch: f, ratio: f / py,
        pytorchExpert: e.value, expertAllocator: e.allocator, ratioExpert: f / e.value, goal, ...(goal === 'info' ? {} : { met: f / e.value >= 1 }), noise: noisy(name),
        bf16Gain: { pytorch: py / med(base, 'py', ips), expert: e.value / eBase.value, expertAllocator: eBase.allocator, finetorch: f / med(base, 'ft', ips) },
        pytorchChannelsLast: med(name, 'pyCl', ips),
        finetorchChannelsLast: med(name, 'ftCl', ips),
        perStep: perStepCounters(name, e),
      });
    }
  }
  if (results['resnet18-int8']) {
    const name = 'resnet18-int8';
    const py = med(name, 'py', ips);
    const f = med(name, 'ft', ips);
    const e = expert(name, ips);
    const engine = pick(name, 'ft')[0]?.engine;
    fig({
      id: name, figure: `ResNet-18 int8 eval (static quantization, ${engine} engine), ${res}, in-memory: img/s`, unit: 'img/s', pytorch: py, finetorch: f, ratio: f / py,
      pytorchExpert: e.value, expertAllocator: e.allocator, ratioExpert: f / e.value, goal: '≥ 1.00 × expert', met: f / e.value >= 1, noise: noisy(name),
      int8Gain: { pytorch: py / med(name, 'py', (r) => r.fp32ImgPerSec), expert: e.value / expert(name, (r) => r.fp32ImgPerSec).value, finetorch: f / med(name, 'ft', (r) => r.fp32ImgPerSec) },
    });
    // the faster of the float model's two layouts: the stricter baseline
    const fp32Contiguous = med(name, 'ft', (r) => r.fp32ImgPerSec);
    const fp32ChannelsLast = med(name, 'ft', (r) => r.fp32ChannelsLastImgPerSec ?? NaN);
    const fp32 = Math.max(fp32Contiguous, Number.isFinite(fp32ChannelsLast) ? fp32ChannelsLast : 0);
    const layout = fp32 === fp32Contiguous ? 'contiguous' : 'channels-last weights';
    fig({
      id: 'resnet18-int8-gain', figure: `ResNet-18 int8 eval, ${res}: img/s (ratio: ÷ finetorch's own fp32 eval in the same processes, ${fmt(fp32, 1)} img/s ${layout})`, unit: 'img/s', pytorch: NaN, finetorch: f, ratio: f / fp32,
      finetorchFp32: fp32Contiguous, finetorchFp32ChannelsLast: fp32ChannelsLast, goal: '≥ 4 × finetorch fp32', met: f / fp32 >= 4, noise: noisy(name),
    });
  }
  if (results['resnet18-shrink']) {
    const name = 'resnet18-shrink';
    const amount = pick(name, 'ft')[0].amount;
    const dense = med(name, 'ft', (r) => r.dense.imgPerSec);
    const shrunk = med(name, 'ft', ips);
    const params = pick(name, 'ft')[0];
    fig({
      id: name, figure: `ResNet-18 eval with ${amount * 100}% of each block's inner channels removed, ${res}: img/s (ratio: ÷ the dense model, ${fmt(dense, 1)} img/s; parameters ${fmt(params.parameters / 1e6, 2)} M of ${fmt(params.dense.parameters / 1e6, 2)} M, weights file ×${fmt(params.fileBytes / params.dense.fileBytes, 2)})`,
      unit: 'img/s', pytorch: NaN, finetorch: shrunk, ratio: shrunk / dense, goal: 'info', noise: noisy(name),
      dense, parametersRatio: params.parameters / params.dense.parameters, fileRatio: params.fileBytes / params.dense.fileBytes,
    });
  }
  if (results['resnet18-train']) {
    const py = med('resnet18-train', 'py', (r) => r.peakRssMB);
    const f = med('resnet18-train', 'ft', (r) => r.peakRssMB);
    const t = med('resnet18-train', 'ftTuned', (r) => r.peakRssMB);
    const e = expert('resnet18-train', (r) => r.peakRssMB, true);
    fig({ id: 'peak-rss', figure: `peak RSS, ResNet-18 training run (${res}): MB`, unit: 'MB', pytorch: py, finetorch: f, ratio: f / py, pytorchExpert: e.value, expertAllocator: e.allocator, ratioExpert: f / e.value, goal: '≤ 1.0', met: f / py <= 1, finetorchTuned: t, ratioTuned: t / py, lowerIsBetter: true });
  }
  for (const mode of ['train', 'eval']) {
    const name = `resnet18-${mode}-cl`;
    if (!results[name]) continue;
    const py = med(name, 'py', ips);
    const f = med(name, 'ft', ips);
    const pyBase = med(`resnet18-${mode}`, 'py', ips);
    const ftBase = med(`resnet18-${mode}`, 'ft', ips);
    fig({
      id: `${name}`, variant: true, figure: `channels_last ResNet-18 ${mode}, ${res}: img/s (ratio: vs PyTorch channels_last)`, unit: 'img/s', pytorch: py, finetorch: f, ratio: f / py,
      goal: 'info', clGainPyTorch: py / pyBase, clGainFinetorch: f / ftBase, noise: noisy(name), layout: pick(name, 'ft')[0]?.layout,
    });
  }
  if (results['alexnet-train-refblas']) {
    const py = med('alexnet-train-refblas', 'py', ips);
    const f = med('alexnet-train-refblas', 'ft', ips);
    fig({
      id: 'alexnet-train-refblas', variant: true, figure: `AlexNet train step with reference BLAS (LD_PRELOAD), ${res}: img/s`, unit: 'img/s', pytorch: py, finetorch: f, ratio: f / py, goal: 'info',
      openblasGainPyTorch: med('alexnet-train', 'py', ips) / py, openblasGainFinetorch: med('alexnet-train', 'ft', ips) / f, noise: noisy('alexnet-train-refblas'),
    });
  }
  if (results.epoch) {
    const epochSeconds = (which) => (r) => (which === 'first' ? r.epochs[0].seconds : median(r.epochs.slice(1).map((e) => e.seconds)));
    const ep = (side, which) => med('epoch', side, epochSeconds(which));
    const eN = expert('epoch', epochSeconds('later'), true);
    const e1 = expert('epoch', epochSeconds('first'), true);
    const py1 = ep('py', 'first');
    const pyN = ep('py', 'later');
    const ft1 = ep('ft', 'first');
    const ftN = ep('ft', 'later');
    const tN = ep('ftTuned', 'later');
    const layout = pick('epoch', 'ft')[0]?.layout;
    const algorithm = pick('epoch', 'ft')[0]?.convAlgorithm;
    const desc = `${data.epochCount} JPEGs, RandomResizedCrop ${s.epoch.size} + flip + ColorJitter 0.1, ResNet-18 train, batch ${s.epoch.batch}${layout ? `; finetorch ${layout}${algorithm ? `, ${algorithm} convolutions` : ''}, PyTorch contiguous` : ''}`;
    fig({
      id: 'epoch', figure: `finetune epoch (${desc}), later epochs: s (ratio: PyTorch ÷ finetorch)`, unit: 's', pytorch: pyN, finetorch: ftN, ratio: pyN / ftN,
      pytorchExpert: eN.value, expertAllocator: eN.allocator, ratioExpert: eN.value / ftN, goal: '≥ 1.5 × expert', met: eN.value / ftN >= 1.5, finetorchTuned: tN, ratioTuned: pyN / tN, lowerIsBetter: true, noise: noisy('epoch'),
      convAlgorithm: pick('epoch', 'ft')[0]?.convAlgorithm,
      ...(results.epoch.ftDirect ? { finetorchDirect: ep('ftDirect', 'later'), ratioExpertDirect: eN.value / ep('ftDirect', 'later') } : {}),
    });
    fig({
      id: 'epoch-first', figure: 'finetune epoch, first epoch (finetorch decodes, then caches): s (PyTorch ÷ finetorch)', unit: 's', pytorch: py1, finetorch: ft1, ratio: py1 / ft1,
      pytorchExpert: e1.value, expertAllocator: e1.allocator, ratioExpert: e1.value / ft1, goal: 'info', finetorchTuned: ep('ftTuned', 'first'), ratioTuned: py1 / ep('ftTuned', 'first'), lowerIsBetter: true, noise: noisy('epoch'),
    });
    if (results['epoch-bf16']) {
      const bN = expert('epoch-bf16', epochSeconds('later'), true);
      const ftB = med('epoch-bf16', 'ft', epochSeconds('later'));
      const pyB = med('epoch-bf16', 'py', epochSeconds('later'));
      fig({
        id: 'epoch-bf16', figure: 'finetune epoch under bf16 autocast (both sides), later epochs: s (ratio: PyTorch ÷ finetorch)', unit: 's', pytorch: pyB, finetorch: ftB, ratio: pyB / ftB,
        pytorchExpert: bN.value, expertAllocator: bN.allocator, ratioExpert: bN.value / ftB, goal: 'info', lowerIsBetter: true, noise: noisy('epoch-bf16'),
        bf16Epoch: { finetorchGain: ftN / ftB, expertGain: eN.value / bN.value, finetorchBf16VsExpertFp32: eN.value / ftB },
      });
    }
    const eff = (side, which) => med('epoch', side, (r) => {
      const e = which === 'first' ? r.epochs[0] : r.epochs[r.epochs.length - 1];
      return e.imgPerSec / r.inMemory.imgPerSec;
    });
    // PyTorch's own efficiency with the allocator that won its epoch figure
    const expertSide = (label) => experts.find((a) => a.label === label)?.side;
    fig({ id: 'pipeline-efficiency', figure: 'pipeline efficiency: loader+train img/s ÷ in-memory train img/s (later epoch, same process)', unit: 'ratio', pytorch: eff('py', 'later'), pytorchExpert: eff(expertSide(eN.allocator), 'later'), expertAllocator: eN.allocator, finetorch: eff('ft', 'later'), ratio: eff('ft', 'later'), goal: '≥ 0.95', met: eff('ft', 'later') >= 0.95, finetorchTuned: eff('ftTuned', 'later'), ratioTuned: eff('ftTuned', 'later'), noise: noisy('epoch') });
    fig({ id: 'pipeline-efficiency-first', figure: 'pipeline efficiency, first epoch (decoding included)', unit: 'ratio', pytorch: eff('py', 'first'), finetorch: eff('ft', 'first'), ratio: eff('ft', 'first'), goal: 'info', finetorchTuned: eff('ftTuned', 'first'), ratioTuned: eff('ftTuned', 'first'), noise: noisy('epoch') });
    const pss = (side) => med('epoch', side, (r) => r.peakTreePssMB);
    fig({ id: 'peak-pss-epoch', figure: 'peak memory of the epoch run, process tree PSS (PyTorch: main + workers): MB', unit: 'MB', pytorch: pss('py'), pytorchExpert: pss(expertSide(eN.allocator)), expertAllocator: eN.allocator, ratioExpert: pss('ft') / pss(expertSide(eN.allocator)), finetorch: pss('ft'), ratio: pss('ft') / pss('py'), goal: 'info', finetorchTuned: pss('ftTuned'), ratioTuned: pss('ftTuned') / pss('py'), lowerIsBetter: true });
  }
  if (results.features) {
    const py = med('features', 'py', (r) => r.totalSeconds);
    const f = med('features', 'ft', (r) => r.totalSeconds);
    const p = pick('features', 'py')[0];
    const fe = s.features;
    fig({
      id: 'features', figure: `feature_extract phase, ${fe.epochs} epochs, ${p ? `${p.trainImages} train + ${p.valImages} val images` : ''} at ${fe.size}² (PyTorch ${p && p.extrapolated ? `${p.measuredEpochs} epochs measured, rest extrapolated` : 'measured'}): s (PyTorch ÷ finetorch)`,
      unit: 's', pytorch: py, finetorch: f, ratio: py / f, goal: '≥ 20', met: py / f >= 20, lowerIsBetter: true, noise: noisy('features'),
      breakdown: pick('features', 'ft')[0]?.breakdown, pyEpochSeconds: p ? median(p.epochSeconds.slice(1)) : NaN,
    });
  }
  if (results.loader) {
    const laterEpochs = (r) => median(r.epochs.slice(1).map((e) => e.imgPerSec));
    const py = med('loader', 'py', laterEpochs);
    const py1 = med('loader', 'py', (r) => r.epochs[0].imgPerSec);
    const e = expert('loader', laterEpochs);
    const e1 = expert('loader', (r) => r.epochs[0].imgPerSec);
    const dec = med('loader', 'ft', (r) => r.decodeImgPerSec);
    const first = med('loader', 'ft', (r) => r.epochs[0].imgPerSec);
    const cached = med('loader', 'ft', (r) => median(r.epochs.slice(1).map((e) => e.imgPerSec)));
    const n = data.loaderCount;
    const vsExpert = (ex, f) => ({ pytorchExpert: ex.value, expertAllocator: ex.allocator, ratioExpert: f / ex.value });
    fig({ id: 'decode', figure: `decode only (sharp, shorter side 256), ${n} JPEGs: img/s (ratio vs PyTorch loader epoch)`, unit: 'img/s', pytorch: py, finetorch: dec, ratio: dec / py, ...vsExpert(e, dec), goal: 'info', noise: noisy('loader') });
    fig({ id: 'loader-first', figure: 'loader first epoch (decode + augment), no training: img/s', unit: 'img/s', pytorch: py1, finetorch: first, ratio: first / py1, ...vsExpert(e1, first), goal: 'info', noise: noisy('loader') });
    fig({ id: 'loader-cached', figure: 'loader cached epoch (augment only) vs ImageFolder+DataLoader(workers=cores): img/s', unit: 'img/s', pytorch: py, finetorch: cached, ratio: cached / py, ...vsExpert(e, cached), goal: 'info', noise: noisy('loader') });
  }
  if (results.augment) {
    const a = s.augment;
    const row = (key) => med('augment', 'ft', (r) => r.msPerImage[key]);
    const base = row('base');
    fig({ id: 'augment-base', figure: `augmentation, one thread, ${a.size}²: RandomResizedCrop + flip + ColorJitter 0.1 + normalise, ms/img`, unit: 'ms', pytorch: NaN, finetorch: base, ratio: NaN, goal: 'info', lowerIsBetter: true, noise: noisy('augment') });
    for (const [key, label] of [['trivial_augment_wide', 'TrivialAugmentWide'], ['rand_augment', 'RandAugment(2, 9)'], ['auto_augment', 'AutoAugment (ImageNet)']]) {
      const v = row(key);
      fig({ id: `augment-${key}`, figure: `the same with ${label} after the flip: ms/img (policy's own cost ${fmt(v - base, 3)} ms)`, unit: 'ms', pytorch: NaN, finetorch: v, ratio: NaN, goal: 'info', lowerIsBetter: true, noise: noisy('augment'), opMsPerImage: pick('augment', 'ft')[0].opMsPerImage });
    }
  }
  for (const [name, label] of [['drift-full', `ResNet-18 ${s.drift.full.size}² batch ${s.drift.full.batch}, full network`], ['drift-head', `head only on cached features, batch ${s.drift.head.batch}`]]) {
    if (!results[name]) continue;
    const f = med(name, 'ft', (r) => r.driftMB);
    const t = med(name, 'ftTuned', (r) => r.driftMB);
    const r0 = pick(name, 'ft')[0];
    const stopped = r0.stepsDone < (name === 'drift-full' ? s.drift.full.steps : s.drift.head.steps) ? ` (stopped at ${s.drift.maxSeconds} s)` : '';
    fig({
      id: name, figure: `RSS drift over ${r0.stepsDone} train steps${stopped}, ${label}: MB from step ${r0.fromStep} to ${r0.toStep}`,
      unit: 'MB', pytorch: NaN, finetorch: f, ratio: NaN, goal: '< 50 MB', met: Math.abs(f) < 50, finetorchTuned: t, lowerIsBetter: true, noise: noisy(name),
    });
  }

  // data-parallel: its own table (finetorch alone, no PyTorch column). Per-trial ratios are taken
  // within one pair of rank processes (paired), then the median over the repeats.
  const ddpFigures = [];
  if (results.ddp) {
    const d = s.ddp;
    const globalBatch = d.batchPerRank * d.worldSize;
    const phase = (name, f) => med('ddp', 'ranks', (r) => (r.phases[name] ? f(r.phases[name]) : NaN));
    const allReduce = (r) => r.allReduce.medianSeconds;
    const one = med('ddp-1proc', 'ft', ips);
    const oneStep = med('ddp-1proc', 'ft', (r) => r.stepSeconds.reduce((a, b) => a + b, 0) / r.stepSeconds.length);
    const r0 = pick('ddp', 'ranks')[0];
    const mb = r0.allReduce.bytes / 1e6;
    const mode = r0.phases.reducer?.mode ?? 'reducer';
    const dfig = (f) => ddpFigures.push({ noise: noisy(f.trials ?? 'ddp'), ...f });
    const procs = `${d.worldSize} processes × 1 thread, ${d.batchPerRank} each`;
    dfig({ id: 'ddp-1proc', trials: 'ddp-1proc', figure: `1 process × ${d.worldSize} threads, batch ${globalBatch}: img/s`, unit: 'img/s', value: one, stepSeconds: oneStep });
    for (const [name, label] of [['reducer', `DDP's Reducer (all-reduce overlaps backward)${mode === 'reducer' ? '' : ` [this libtorch: ${mode}]`}`], ['flat', 'flat buckets after backward (no overlap)'], ['none', 'no gradient sync (compute only)']]) {
      const v = phase(name, (p) => p.imgPerSec);
      dfig({ id: `ddp-${name}`, figure: `${procs}, ${label}: global img/s (× one process)`, unit: 'img/s', value: v, vsOneProcess: v / one, stepSeconds: phase(name, (p) => p.meanStepSeconds) });
    }
    dfig({ id: 'ddp-allreduce', figure: `all-reduce of ${fmt(mb, 1)} MB float32 (the gradients: ${r0.allReduce.values.toLocaleString('en-US')} values), ${d.worldSize} ranks, Gloo loopback: ms`, unit: 'ms', value: med('ddp', 'ranks', allReduce) * 1000 });
    dfig({ id: 'ddp-allreduce-per-step', figure: 'all-reduce time ÷ DDP step time (Reducer)', unit: 'ratio', value: med('ddp', 'ranks', (r) => allReduce(r) / r.phases.reducer.meanStepSeconds) });
    dfig({ id: 'ddp-allreduce-per-compute', figure: 'all-reduce time ÷ step time without communication', unit: 'ratio', value: med('ddp', 'ranks', (r) => allReduce(r) / r.phases.none.meanStepSeconds) });
    dfig({ id: 'ddp-overlap-gain', figure: "overlap's gain: flat-bucket step − Reducer step: ms", unit: 'ms', value: med('ddp', 'ranks', (r) => (r.phases.flat.meanStepSeconds - r.phases.reducer.meanStepSeconds) * 1000) });
    dfig({ id: 'ddp-overlap-hidden', figure: "share of the all-reduce the overlap hid: (flat − Reducer) ÷ all-reduce", unit: 'ratio', value: med('ddp', 'ranks', (r) => (r.phases.flat.meanStepSeconds - r.phases.reducer.meanStepSeconds) / allReduce(r)) });
    dfig({ id: 'ddp-communication', figure: 'communication left in the Reducer step: Reducer step − step without sync: ms', unit: 'ms', value: med('ddp', 'ranks', (r) => (r.phases.reducer.meanStepSeconds - r.phases.none.meanStepSeconds) * 1000) });
  }

  // ---- output -------------------------------------------------------------------------------------
  const totalMinutes = (Date.now() - started) / 60000;
  const digits = (f) => (f.unit === 'ratio' ? 3 : f.unit === 'MB' ? 0 : 2);
  const showTuned = figures.some((f) => Number.isFinite(f.finetorchTuned));
  const rows = figures.map((f) => [
    f.figure,
    fmt(f.pytorch, digits(f)),
    Number.isFinite(f.pytorchExpert) ? `${fmt(f.pytorchExpert, digits(f))} (${f.expertAllocator})` : '',
    fmt(f.finetorch, digits(f)),
    f.unit === 'MB' && f.id.startsWith('drift') ? '' : fmt(f.ratio, 2),
    f.unit === 'ratio' ? '' : fmt(f.ratioExpert, 2),
    f.goal,
    f.met === undefined ? '' : f.met ? 'yes' : 'NO',
    ...(showTuned ? [f.finetorchTuned === undefined ? '' : `${fmt(f.finetorchTuned, digits(f))}${Number.isFinite(f.ratioTuned) && f.unit !== 'ratio' ? ` (${fmt(f.ratioTuned, 2)})` : ''}`] : []),
    f.noise.disturbed > 0 ? `${f.noise.disturbed}/${f.noise.of} (${fmt(f.noise.max, 2)})` : '',
  ]);
  const header = `finetorch ÷ PyTorch — ${meta.mode} mode, ${meta.cores} cores (${meta.cpu}), ${threads} threads, libtorch ${meta.libtorch} (PyTorch ${meta.pytorch}, torchvision ${meta.torchvision}), BLAS ${path.basename(path.dirname(meta.blas))}, ${fmt(totalMinutes, 1)} min`;
  const headers = ['figure', 'PyTorch', 'PyTorch expert (allocator)', 'finetorch', 'ratio', 'ratio vs expert', 'goal', 'met', ...(showTuned ? ['finetorch malloc-tuned (ratio)'] : []), 'busy'];
  const text = `${header}\n\n${table(rows, headers)}\n\n` +
    'ratio: finetorch ÷ PyTorch for img/s and memory, PyTorch ÷ finetorch for times. PyTorch: as shipped (glibc malloc). PyTorch expert: the fastest of ' +
    `${experts.map((a) => `${a.label} (${Object.entries(a.env).map(([k, v]) => `${k}=${v}`).join(' ')})`).join(', ')}, each run like PyTorch, median per allocator. ` +
    (showTuned ? `malloc-tuned: finetorch child run with MALLOC_ARENA_MAX=1 GLIBC_TUNABLES=${MALLOC_TUNING.GLIBC_TUNABLES}. ` : '') +
    "busy: trials disturbed by other processes (> 0.15 cores) of all the figure's trials, and the most cores they used.\n" +
    figures.filter((f) => f.clGainPyTorch).map((f) => `channels_last ${f.id.includes('train') ? 'train' : 'eval'}: PyTorch (model + batch) ×${fmt(f.clGainPyTorch)} vs its contiguous run, finetorch (${f.layout}) ×${fmt(f.clGainFinetorch)}\n`).join('') +
    // the bf16 epoch against the fp32 epoch of the same run (issue 21's goal is the fp32 expert epoch)
    figures.filter((f) => f.bf16Epoch).map((f) =>
      `${f.id}: bf16 speed-up of the epoch: finetorch ×${fmt(f.bf16Epoch.finetorchGain)}, PyTorch expert ×${fmt(f.bf16Epoch.expertGain)}; finetorch bf16 epoch ÷ PyTorch expert fp32 epoch: ${fmt(f.bf16Epoch.finetorchBf16VsExpertFp32)}\n`).join('') +
    // bf16: each side's speed-up over its own fp32 figure of this run (AlexNet's fp32 only comes with the step group)
    figures.filter((f) => f.bf16Gain).map((f) => [
      Number.isFinite(f.bf16Gain.finetorch) ? `bf16 autocast speed-up over fp32 in this run: PyTorch ×${fmt(f.bf16Gain.pytorch)}, PyTorch expert ×${fmt(f.bf16Gain.expert)} (${f.expertAllocator} bf16 ÷ ${f.bf16Gain.expertAllocator} fp32), finetorch ×${fmt(f.bf16Gain.finetorch)}` : '',
      Number.isFinite(f.pytorchChannelsLast)
        ? `PyTorch bf16 with channels_last model + batch (${threadsAllocator.label}): ${fmt(f.pytorchChannelsLast)} img/s, finetorch ÷ that ${fmt(f.finetorch / f.pytorchChannelsLast)}` +
          (Number.isFinite(f.finetorchChannelsLast) ? `; finetorch with channels-last weights too: ${fmt(f.finetorchChannelsLast)} img/s, ÷ PyTorch's ${fmt(f.finetorchChannelsLast / f.pytorchChannelsLast)}` : '')
        : '',
    ].filter(Boolean).map((part) => `${f.id}: ${part}\n`).join('')).join('') +
    // the next networks: PyTorch also computing in channels-last, as finetorch does on the CPU
    figures.filter((f) => f.ratioChannelsLast).map((f) => `${f.id}: PyTorch with channels_last model + batch (${threadsAllocator.label}): ${fmt(f.pytorchChannelsLast)} img/s, finetorch ÷ that ${fmt(f.ratioChannelsLast)}\n`).join('') +
    // Winograd (the trainer's conv_algorithm auto) against ATen's direct convolutions
    figures.filter((f) => Number.isFinite(f.finetorchWinograd)).map((f) => `${f.id}: finetorch with Winograd convolutions (conv_algorithm auto, as the trainer runs): ${fmt(f.finetorchWinograd)} img/s, ÷ PyTorch expert ${fmt(f.ratioExpertWinograd)}\n`).join('') +
    figures.filter((f) => Number.isFinite(f.finetorchDirect)).map((f) => `${f.id}: finetorch's convolutions ${f.convAlgorithm}; with ATen's direct ones (conv_algorithm direct): ${fmt(f.finetorchDirect)} s, PyTorch expert ÷ that ${fmt(f.ratioExpertDirect)}\n`).join('') +
    figures.filter((f) => f.openblasGainPyTorch).map((f) => `OpenBLAS vs reference BLAS (AlexNet train): PyTorch ×${fmt(f.openblasGainPyTorch)}, finetorch ×${fmt(f.openblasGainFinetorch)}\n`).join('') +
    figures.filter((f) => f.breakdown).map((f) => `feature_extract, finetorch's ${fmt(f.finetorch, 1)} s: ${fmt(f.breakdown.untilFeatureCacheSeconds, 1)} s until the feature cache is ready (scan, decode, backbone once), ` +
      `${fmt(f.breakdown.epochsSeconds, 1)} s for the epochs (${fmt(f.breakdown.headTrainSeconds, 1)} s of it the trainer's train loops: head steps and the per-epoch NaN check; the rest validation and checkpoint writes), ${fmt(f.breakdown.afterTestSeconds, 1)} s after the test. ` +
      `PyTorch: ${fmt(f.pyEpochSeconds, 2)} s per epoch.\n`).join('') +
    // per-step process counters of the step figures: page faults, context switches, CPU seconds
    figures.filter((f) => f.perStep).map((f) => `${f.id} per step (minor faults / voluntary + involuntary context switches / CPU s): ${f.perStep.map((p) => `${p.side} ${fmt(p.faults, 0)} / ${fmt(p.vcsw, 0)} + ${fmt(p.ivcsw, 0)} / ${fmt(p.cpu, 3)}`).join('; ')}\n`).join('') +
    figures.filter((f) => Number.isFinite(f.pytorchThreads)).map((f) => `${f.id}: PyTorch with ${threadsAllocator.label} plus finetorch's thread-pool settings (${Object.entries(THREAD_POOL_DEFAULTS).map(([k, v]) => `${k}=${v}`).join(' ')}): ${fmt(f.pytorchThreads)} img/s; finetorch ÷ that ${fmt(f.finetorch / f.pytorchThreads)}\n`).join('');
  let ddpText = '';
  if (ddpFigures.length > 0) {
    const d = s.ddp;
    const stepMs = (f) => (Number.isFinite(f.stepSeconds) ? fmt(f.stepSeconds * 1000, 1) : '');
    const ddpRows = ddpFigures.map((f) => [
      f.figure,
      `${fmt(f.value, f.unit === 'ratio' ? 3 : f.unit === 'ms' ? 1 : 2)}${Number.isFinite(f.vsOneProcess) ? ` (×${fmt(f.vsOneProcess, 2)})` : ''}`,
      stepMs(f),
      f.noise.disturbed > 0 ? `${f.noise.disturbed}/${f.noise.of} (${fmt(f.noise.max, 2)})` : '',
    ]);
    ddpText = `data-parallel on c10d (Gloo, loopback) — ${d.arch === 'resnet18' ? 'ResNet-18' : d.arch} ${d.size}², global batch ${d.batchPerRank * d.worldSize}, every layer trained, channels-last, SGD momentum 0.9; ` +
      `${d.warmup} warm-up + ${d.steps} timed steps, median of ${d.repeats} process pairs; ${meta.cores} cores (${meta.cpu}), libtorch ${meta.libtorch}\n\n` +
      `${table(ddpRows, ['figure', 'value', 'step ms', 'busy'])}\n\n` +
      "step ms: the mean step (global batch ÷ img/s); a distributed step is the slowest rank's, all ranks starting it together after a barrier. Ratios are taken within each process pair, then the median.\n";
  }
  const output = (figures.length > 0 ? `${text}\n` : '') + ddpText;
  process.stdout.write(`${output}\n`);
  fs.mkdirSync(path.dirname(opts.out), { recursive: true });
  fs.writeFileSync(opts.out, JSON.stringify({ meta, figures, ...(ddpFigures.length > 0 ? { ddp: { settings: s.ddp, figures: ddpFigures } } : {}), table: output, trials: results, data: data.missing ? { missing: data.missing } : data }, null, 1));
  log(`wrote ${path.relative(process.cwd(), opts.out)}`);
  fs.rmSync(tmp, { recursive: true, force: true });
}

main().catch((error) => {
  killRanks();
  if (current.tmp) fs.rmSync(current.tmp, { recursive: true, force: true });
  process.stderr.write(`${error && error.stack ? error.stack : error}\n`);
  process.exit(1);
});
