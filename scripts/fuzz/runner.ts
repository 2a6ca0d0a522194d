// A fuzz run: makes the seeds, hands every (format, index) input to a pool of worker processes,
// tallies the outcomes per format, saves each finding (input + .json) and writes the JSON report.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { FORMAT_DEFS, FORMATS, makeInput, makeSeeds, type FuzzFormat } from './formats';
import { FINDINGS, newStats, type Finding, type FormatStats, type FuzzReport } from './report';
import { Worker, workerCommand, type TaskResult } from './worker-process';

export interface FuzzOptions {
  formats?: readonly FuzzFormat[];
  count?: number;
  seed?: number;
  timeoutMs?: number;
  workers?: number;
  rssCapMb?: number;
  /** Address-space limit per worker through prlimit(1); 0 for none. */
  asLimitMb?: number;
  findingsDir?: string;
  jsonFile?: string;
  quiet?: boolean;
  /** Only these input indices (for --only). */
  indices?: readonly number[];
  /** How to start a worker: the script and its arguments after `node [nodeArgs]`. Default: worker.ts/.js next to this file. */
  workerArgv?: readonly string[];
  /** Node flags for workers (before the script). */
  nodeArgs?: readonly string[];
  /** Progress and the table go here (default: process.stderr / process.stdout). */
  log?: (line: string) => void;
}

function normalizeMessage(message: string, workDir: string): string {
  return message.split(workDir).join('<dir>').replace(/'[^']*\/in-[^']*'/g, "'<file>'").replace(/\d+/g, '#').slice(0, 110);
}

export async function runFuzz(options: FuzzOptions = {}): Promise<FuzzReport> {
  const formats = options.formats ?? FORMATS;
  const count = options.count ?? 10000;
  const runSeed = options.seed ?? 1;
  const timeoutMs = options.timeoutMs ?? 5000;
  const workers = Math.max(1, options.workers ?? os.cpus().length);
  const rssCapMb = options.rssCapMb ?? 1536;
  const rssCap = rssCapMb * 2 ** 20;
  const { command, args, asLimitMb } = workerCommand(options);
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const findingsDir = options.findingsDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-fuzz-findings-'));
  fs.mkdirSync(findingsDir, { recursive: true });
  const jsonFile = options.jsonFile ?? path.join(findingsDir, 'fuzz-report.json');
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-fuzz-'));
  const started = Date.now();

  const stats: Partial<Record<FuzzFormat, FormatStats>> = {};
  const rejections = new Map<FuzzFormat, Map<string, number>>();
  let restarts = 0;
  try {
    const seeds = await makeSeeds(path.join(workDir, 'seeds'), formats);
    const tasks: { format: FuzzFormat; index: number }[] = [];
    for (const format of formats) {
      stats[format] = newStats();
      rejections.set(format, new Map());
      for (const index of options.indices ?? Array.from({ length: count }, (_, i) => i)) tasks.push({ format, index });
    }
    const perFormat = new Map<FuzzFormat, number>(formats.map((f) => [f, 0]));
    const formatStart = new Map<FuzzFormat, number>();
    let next = 0;
    let startFailures = 0;

    const startWorker = async (): Promise<Worker> => {
      for (;;) {
        const w = new Worker(command, args);
        try {
          await w.ready;
          startFailures = 0;
          return w;
        } catch (e) {
          w.kill();
          if (++startFailures >= 3) throw e;
        }
      }
    };

    const record = (format: FuzzFormat, index: number, input: Buffer, r: TaskResult) => {
      const s = stats[format]!;
      s.inputs++;
      s.workerMs += r.ms;
      switch (r.outcome) {
        case 'accepted': s.accepted++; break;
        case 'rejected': {
          s.rejected++;
          const key = normalizeMessage(r.detail, workDir);
          const m = rejections.get(format)!;
          m.set(key, (m.get(key) ?? 0) + 1);
          break;
        }
        case 'crash': s.crashes++; break;
        case 'hang': s.hangs++; break;
        case 'big-alloc': s.bigAlloc++; break;
        case 'bad-error': s.badErrors++; break;
      }
      s.slowest.push({ index, ms: r.ms, outcome: r.outcome, how: r.how || normalizeMessage(r.detail, workDir) });
      s.slowest.sort((a, b) => b.ms - a.ms);
      s.slowest.length = Math.min(s.slowest.length, 5);
      const save = FINDINGS.includes(r.outcome) || options.indices !== undefined;
      if (save) {
        const base = `${format}-${index}-${r.outcome}`;
        const file = path.join(findingsDir, base + FORMAT_DEFS[format].ext);
        fs.writeFileSync(file, input);
        const finding: Finding = { format, index, outcome: r.outcome, how: r.how, detail: r.detail.slice(0, 4000), file };
        fs.writeFileSync(path.join(findingsDir, `${base}.json`), JSON.stringify({ ...finding, seed: runSeed, ms: r.ms, bytes: input.length }, null, 2));
        if (FINDINGS.includes(r.outcome)) {
          s.findings.push(finding);
          log(`[fuzz] ${r.outcome.toUpperCase()}: ${format} #${index}: ${r.how} ${r.detail ? `(${r.detail.split('\n').slice(-3).join(' | ').slice(0, 300)})` : ''} -> ${file}`);
        }
      }
      const done = perFormat.get(format)! + 1;
      perFormat.set(format, done);
      const total = options.indices?.length ?? count;
      if (!options.quiet && (done === total || done % 2500 === 0)) {
        const f = (n: number) => String(n).padStart(5);
        log(`[fuzz] ${format.padEnd(11)} ${f(done)}/${total}  accepted ${f(s.accepted)}  rejected ${f(s.rejected)}  findings ${s.crashes + s.hangs + s.bigAlloc + s.badErrors}  ${((Date.now() - formatStart.get(format)!) / 1000).toFixed(1)} s`);
      }
    };

    let aborted = false;
    const loop = async (slot: number): Promise<void> => {
      let w: Worker;
      try {
        w = await startWorker();
      } catch (e) {
        aborted = true;
        throw e;
      }
      try {
        for (;;) {
          const task = aborted ? undefined : tasks[next++];
          if (!task) return;
          if (!formatStart.has(task.format)) formatStart.set(task.format, Date.now());
          const input = makeInput(task.format, task.index, runSeed, seeds[task.format]);
          const file = path.join(workDir, `in-${slot}-${task.format}-${task.index}${FORMAT_DEFS[task.format].ext}`);
          fs.writeFileSync(file, input);
          const r = await w.run(task.format, file, task.index, timeoutMs, rssCap);
          record(task.format, task.index, input, r);
          fs.rmSync(file, { force: true });
          if (r.replace || w.exited || w.tasks >= 3000) {
            w.kill();
            restarts++;
            try {
              w = await startWorker();
            } catch (e) {
              aborted = true;
              throw e;
            }
          }
        }
      } finally {
        w.kill();
      }
    };
    await Promise.all(Array.from({ length: Math.min(workers, tasks.length) }, (_, i) => loop(i)));
  } finally {
    fs.rmSync(workDir, { recursive: true, force: true });
  }

  for (const format of formats) {
    const m = rejections.get(format);
    if (m) stats[format]!.topRejections = [...m].sort((a, b) => b[1] - a[1]).slice(0, 10);
  }
  const totals = { inputs: 0, accepted: 0, rejected: 0, crashes: 0, hangs: 0, bigAlloc: 0, badErrors: 0 };
  for (const s of Object.values(stats)) for (const k of Object.keys(totals) as (keyof typeof totals)[]) totals[k] += s![k];
  const report: FuzzReport = {
    seed: runSeed, count, timeoutMs, rssCapMb, asLimitMb, workers, durationMs: Date.now() - started, findingsDir, jsonFile, formats: stats, totals,
    workerRestarts: restarts,
  };
  fs.writeFileSync(jsonFile, JSON.stringify(report, null, 2));
  return report;
}
