// The parent's handle on the worker child process: starts it (under prlimit's address-space limit
// when available, so a huge allocation fails inside libtorch instead of exhausting the machine),
// sends it one sequence at a time, and turns its answer, death or silence into a verdict:
//
//   ok        every call returned or failed with a JS Error that has a message
//   finding   a call threw a non-Error value or an Error with an empty message
//   crash     the child died: a signal other than SIGABRT, a non-zero exit, an uncaught exception
//             or unhandled rejection (reported by the child before it exits), or an exit mid-sequence
//   abort     the child died of SIGABRT (std::terminate, a failed assertion, abort())
//   hang      no call finished within the timeout
//
// One child runs many sequences; it is replaced after a crash, abort or hang, and every
// `recycleAfter` sequences.
import * as fs from 'fs';
import * as path from 'path';
import { createSyntheticDataset } from '../../lib/data/synthetic';
import { findPrlimit, IpcChild } from '../fuzz/child-process';
import { DATASET_FOLDER, type Sequence, type SequenceStats } from './calls';
import type { ChildMessage, RunMessage } from './worker';

/** The worker's script next to this file: worker.ts under ts-jest/ts-register, worker.js in dist/. */
export const WORKER_SCRIPT = path.join(__dirname, `worker${path.extname(__filename)}`);

export type Verdict = 'ok' | 'finding' | 'crash' | 'abort' | 'hang';
export const FAILURES: readonly Verdict[] = ['finding', 'crash', 'abort', 'hang'];

export interface SequenceResult {
  verdict: Verdict;
  /** What went wrong, e.g. 'killed by SIGSEGV', 'unhandled rejection: ...' ('' when ok). */
  how: string;
  /** The call in flight when the child died or hung, or that of the first finding (-1 when ok). */
  call: number;
  /** Per-call outcomes, when the child answered. */
  stats?: SequenceStats;
  /** The child's last stderr output, for crashes. */
  stderr: string;
  ms: number;
}

export interface ChildOptions {
  /** Script and arguments after `node [nodeArgs]` (default: WORKER_SCRIPT). */
  workerArgv?: readonly string[];
  /** Node flags for the child (e.g. ['-r', 'test/fuzz/ts-register.js'] to run the .ts sources). */
  nodeArgs?: readonly string[];
  /** Address-space limit through prlimit(1); 0 for none (default 8192 MB). */
  asLimitMb?: number;
  /** libtorch threads in the child (default 1). */
  threads?: number;
  /** A new child after this many sequences (default 500). */
  recycleAfter?: number;
  /** Scratch folder the children share (the synthetic dataset, writers' files). */
  scratch: string;
}

class Child extends IpcChild {
  sequences = 0;

  constructor(options: ChildOptions) {
    const prlimit = findPrlimit();
    const asLimitMb = prlimit ? options.asLimitMb ?? 8192 : 0;
    const nodeArgs = ['--max-old-space-size=2048', '--expose-gc', ...(options.nodeArgs ?? [])];
    const argv = [...nodeArgs, ...(options.workerArgv ?? [WORKER_SCRIPT])];
    const [command, args] = asLimitMb > 0 ? [prlimit!, [`--as=${asLimitMb * 2 ** 20}`, process.execPath, ...argv]] : [process.execPath, argv];
    super(command, args, { FINETORCH_API_FUZZ_DIR: options.scratch, FINETORCH_API_FUZZ_THREADS: String(options.threads ?? 1) }, 'api-fuzz worker', 180000);
  }

  run(id: number, sequence: Sequence, timeoutMs: number): Promise<SequenceResult & { replace: boolean }> {
    this.sequences++;
    const started = Date.now();
    return new Promise((resolve) => {
      let inFlight = 0;
      let fatal: Extract<ChildMessage, { type: 'fatal' }> | undefined;
      let timer: NodeJS.Timeout;
      const finish = (r: Omit<SequenceResult, 'ms' | 'stderr'> & { replace: boolean }) => {
        clearTimeout(timer);
        this.proc.off('message', onMessage);
        this.proc.off('exit', onExit);
        resolve({ ...r, stderr: this.stderr.slice(-3000), ms: Date.now() - started });
      };
      // The time allowed for the call in flight: timeoutMs per invocation it starts (times: n starts
      // n) and per invocation of spawned calls still running (awaited at awaitAll and at the end).
      const invocations = (i: number) => Math.max(1, Math.min(16, sequence[i]?.times ?? 1));
      let spawned = 0;
      const arm = () => {
        clearTimeout(timer);
        const allowed = timeoutMs * ((inFlight < sequence.length ? invocations(inFlight) : 0) + spawned || 1);
        timer = setTimeout(() => {
          this.kill();
          finish({ verdict: 'hang', how: `no answer within ${allowed} ms (call ${inFlight}: ${sequence[inFlight]?.op ?? 'the end of the sequence'})`, call: inFlight, replace: true });
        }, allowed);
      };
      const onMessage = (m: ChildMessage) => {
        if (m?.type === 'progress' && m.id === id) {
          const done = sequence[m.call];
          if (done?.op === 'awaitAll') spawned = 0;
          else if (done?.spawn) spawned += invocations(m.call);
          inFlight = m.call + 1;
          arm();
        } else if (m?.type === 'fatal' && (m.id === id || m.id === -1)) {
          fatal = m; // the child exits right after; onExit classifies
        } else if (m?.type === 'result' && m.id === id) {
          const first = m.stats.findings[0];
          finish(
            first
              ? { verdict: 'finding', how: `${first.op}: ${first.what}`, call: first.call, stats: m.stats, replace: false }
              : { verdict: 'ok', how: '', call: -1, stats: m.stats, replace: false },
          );
        }
      };
      const onExit = (code: number | null, signal: string | null) => {
        if (fatal) {
          finish({ verdict: 'crash', how: `${fatal.kind}: ${fatal.message.split('\n')[0]}`, call: fatal.call >= 0 ? fatal.call : inFlight, replace: true });
        } else if (signal === 'SIGABRT') {
          finish({ verdict: 'abort', how: 'killed by SIGABRT', call: inFlight, replace: true });
        } else {
          finish({ verdict: 'crash', how: signal ? `killed by ${signal}` : `exited with code ${code} mid-sequence`, call: inFlight, replace: true });
        }
      };
      this.proc.on('message', onMessage);
      this.proc.once('exit', onExit);
      arm();
      this.proc.send({ type: 'run', id, sequence } satisfies RunMessage);
    });
  }
}

const prepared = new Map<string, Promise<unknown>>();

/** The tiny image tree the loaders read, made once per scratch folder before any child starts. */
function prepareScratch(scratch: string): Promise<unknown> {
  let p = prepared.get(scratch);
  if (!p) {
    const root = path.join(scratch, DATASET_FOLDER);
    p = fs.existsSync(root) ? Promise.resolve() : createSyntheticDataset(root, { classes: 2, perClass: 3, size: 32, seed: 1 });
    prepared.set(scratch, p);
  }
  return p;
}

/** One worker child at a time, started on demand and replaced when it dies, hangs or has run long enough. */
export class ChildRunner {
  private child: Child | undefined;
  private nextId = 0;
  restarts = 0;

  constructor(readonly options: ChildOptions) {
    fs.mkdirSync(options.scratch, { recursive: true });
  }

  private async live(): Promise<Child> {
    if (this.child && !this.child.exited && this.child.sequences < (this.options.recycleAfter ?? 500)) return this.child;
    await prepareScratch(this.options.scratch);
    if (this.child) {
      this.child.kill();
      this.restarts++;
    }
    for (let attempt = 1; ; attempt++) {
      this.child = new Child(this.options);
      try {
        await this.child.ready;
        return this.child;
      } catch (e) {
        this.child.kill();
        if (attempt >= 3) throw e;
      }
    }
  }

  async run(sequence: Sequence, timeoutMs: number): Promise<SequenceResult> {
    const child = await this.live();
    const { replace, ...result } = await child.run(++this.nextId, sequence, timeoutMs);
    if (replace) child.kill();
    return result;
  }

  close(): void {
    this.child?.kill();
    this.child = undefined;
  }
}
