// The child-process side of the API fuzzer: runs one sequence of calls at a time through the
// catalogue and answers over IPC with how each call ended, reporting progress after every call so
// that the parent knows which call a crash or a hang happened in.
//
// Started by child.ts as `node [flags] worker.js` (worker.ts under test/fuzz/ts-register.js), with
// FINETORCH_API_FUZZ_DIR naming a scratch folder the parent owns and removes (holding the synthetic
// image tree the loaders read).
//
// A failure is acceptable when it is a JS Error with a non-empty message; any other thrown value is
// a finding. An uncaught exception or unhandled rejection (which would end a user's process) is
// reported as 'fatal' and the child exits with FATAL_EXIT_CODE.
import * as fs from 'fs';
import * as path from 'path';
import { type Arg, type Call, DATASET_FOLDER, normalizeMessage, type OpName, type Sequence, type SequenceStats } from './calls';
import { CATALOGUE, Context, decodeArg, isReceiver, Skip } from './catalogue';

export const FATAL_EXIT_CODE = 70;

export interface RunMessage {
  type: 'run';
  id: number;
  sequence: Sequence;
}

export type ChildMessage =
  | { type: 'ready' }
  | { type: 'progress'; id: number; call: number }
  | { type: 'result'; id: number; stats: SequenceStats; calls: number }
  | { type: 'fatal'; id: number; call: number; kind: string; message: string };

/** Why a thrown value is not an acceptable error, or undefined when it is one. */
export function improperError(e: unknown): string | undefined {
  if (!(e instanceof Error)) {
    let shown: string;
    try {
      shown = typeof e === 'symbol' ? e.toString() : JSON.stringify(e) ?? String(e);
    } catch {
      shown = Object.prototype.toString.call(e);
    }
    return `threw a non-Error: ${typeof e} ${shown.slice(0, 200)}`;
  }
  if (typeof e.message !== 'string' || e.message.trim() === '') return `threw ${e.name || 'an Error'} with an empty message`;
  return undefined;
}

class SequenceRun {
  readonly stats: SequenceStats = { ok: 0, errors: {}, skipped: 0, findings: [], byOp: {} };

  constructor(readonly ctx: Context) {}

  private settle(index: number, op: string, outcome: { ok: true } | { ok: false; error: unknown }): void {
    const tally = (this.stats.byOp[op] ??= [0, 0, 0]);
    if (outcome.ok) {
      this.stats.ok++;
      tally[0]++;
      return;
    }
    const e = outcome.error;
    if (e instanceof Skip) {
      this.stats.skipped++;
      tally[2]++;
      return;
    }
    const bad = improperError(e);
    if (bad) {
      this.stats.findings.push({ call: index, op, what: bad });
      return;
    }
    tally[1]++;
    const key = normalizeMessage(`${(e as Error).name}: ${(e as Error).message}`);
    this.stats.errors[key] = (this.stats.errors[key] ?? 0) + 1;
  }

  /** Starts one copy of the call; resolves (never rejects) when it has settled and been counted. */
  private start(index: number, call: Call): Promise<void> {
    const op = CATALOGUE[call.op as OpName];
    let running: Promise<unknown>;
    try {
      if (!op) throw new Error(`unknown operation '${call.op}' in the sequence`);
      const args = call.args.map((a: Arg) => decodeArg(this.ctx, a));
      if (op.receiver && !isReceiver(op.receiver, args[0])) throw new Skip(`no ${op.receiver}`);
      running = Promise.resolve(op.run(this.ctx, args));
    } catch (e) {
      running = Promise.reject(e);
    }
    return running.then(
      () => this.settle(index, call.op, { ok: true }),
      (error: unknown) => this.settle(index, call.op, { ok: false, error }),
    );
  }

  async call(index: number, call: Call): Promise<void> {
    if (call.op === 'awaitAll') {
      await this.awaitPending();
      this.stats.ok++;
      return;
    }
    const copies = Array.from({ length: Math.max(1, Math.min(16, call.times ?? 1)) }, () => this.start(index, call));
    const all = Promise.all(copies).then(() => undefined);
    if (call.spawn) this.ctx.pending.push(all);
    else await all;
  }

  async awaitPending(): Promise<void> {
    while (this.ctx.pending.length) {
      const pending = this.ctx.pending;
      this.ctx.pending = [];
      await Promise.all(pending);
    }
  }
}

/** Runs a sequence in this process; `progress(i)` after call i. */
export async function runSequence(sequence: Sequence, scratch: string, samples: Context['samples'], progress: (call: number) => void = () => undefined): Promise<SequenceStats> {
  fs.mkdirSync(scratch, { recursive: true });
  const ctx = new Context(scratch, samples);
  const run = new SequenceRun(ctx);
  try {
    for (let i = 0; i < sequence.length; i++) {
      await run.call(i, sequence[i]);
      progress(i);
    }
    await run.awaitPending();
  } finally {
    try {
      await ctx.cleanup();
    } catch (e) {
      const bad = improperError(e);
      if (bad) run.stats.findings.push({ call: sequence.length, op: 'cleanup', what: bad });
      else run.stats.findings.push({ call: sequence.length, op: 'cleanup', what: `dispose()/close() threw at the end: ${(e as Error).message}` });
    }
    fs.rmSync(scratch, { recursive: true, force: true });
  }
  return run.stats;
}

export async function workerMain(): Promise<void> {
  const base = process.env.FINETORCH_API_FUZZ_DIR;
  if (!base) throw new Error('FINETORCH_API_FUZZ_DIR is not set');
  /* eslint-disable @typescript-eslint/no-require-imports */
  const lib = require('../../lib') as typeof import('../../lib');
  /* eslint-enable @typescript-eslint/no-require-imports */
  lib.setNumThreads(Number(process.env.FINETORCH_API_FUZZ_THREADS ?? 1));
  const samples = (await lib.scanDataset(path.join(base, DATASET_FOLDER), { warn: () => undefined })).samples;
  // relative paths a sequence passes (a writer's folder named 'cpu', say) land in the scratch folder
  process.chdir(base);
  let current: { id: number; call: number } | undefined;
  const fatal = (kind: string) => (e: unknown) => {
    const message = e instanceof Error ? `${e.name}: ${e.message}\n${e.stack ?? ''}` : String(e);
    process.send!({ type: 'fatal', id: current?.id ?? -1, call: current?.call ?? -1, kind, message: message.slice(0, 4000) } satisfies ChildMessage, () =>
      process.exit(FATAL_EXIT_CODE),
    );
  };
  process.on('uncaughtException', fatal('uncaught exception'));
  process.on('unhandledRejection', fatal('unhandled rejection'));
  let done = 0;
  process.on('message', (msg: RunMessage) => {
    if (msg?.type !== 'run') return;
    current = { id: msg.id, call: -1 };
    void runSequence(msg.sequence, path.join(base, `seq-${process.pid}-${msg.id}`), samples, (call) => {
      current!.call = call + 1;
      process.send!({ type: 'progress', id: msg.id, call } satisfies ChildMessage);
    }).then((stats) => {
      if (++done % 16 === 0) (globalThis as { gc?: () => void }).gc?.();
      process.send!({ type: 'result', id: msg.id, stats, calls: msg.sequence.length } satisfies ChildMessage);
    }, fatal('harness error'));
  });
  process.on('disconnect', () => process.exit(0));
  process.send!({ type: 'ready' } satisfies ChildMessage);
}

if (require.main === module) {
  workerMain().catch((e) => {
    process.stderr.write(`api-fuzz worker failed to start: ${e instanceof Error ? e.stack : String(e)}\n`);
    process.exit(2);
  });
}
