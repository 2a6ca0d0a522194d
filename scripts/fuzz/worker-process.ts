// The parent's handle on one worker child process: starts it (under prlimit's address-space limit
// when available), sends it one input at a time, and turns its answer, death, silence or memory
// growth into an outcome (accepted, rejected, crash, hang, big-alloc, bad-error).
import * as fs from 'fs';
import * as path from 'path';
import { findPrlimit, IpcChild } from './child-process';
import type { FuzzFormat } from './formats';
import type { Outcome } from './report';
import type { LoadMessage, ResultMessage } from './worker';

/** The worker's script next to this file: worker.ts under ts-jest/ts-register, worker.js in dist/. */
export const WORKER_SCRIPT = path.join(__dirname, `worker${path.extname(__filename)}`);

const OOM_MESSAGE = /bad_alloc|not enough memory|out of memory|allocation failed|Invalid array length|Invalid typed array length|Cannot create a string longer than|Array buffer allocation|ERR_BUFFER_TOO_LARGE|ERR_STRING_TOO_LONG|Reached heap limit|cannot allocate memory|ENOMEM/i;

export interface TaskResult {
  outcome: Outcome;
  how: string;
  detail: string;
  ms: number;
  replace: boolean;
}

function readRss(pid: number): number {
  try {
    const statm = fs.readFileSync(`/proc/${pid}/statm`, 'latin1').split(' ');
    return Number(statm[1]) * 4096;
  } catch {
    return 0;
  }
}

export class Worker extends IpcChild {
  tasks = 0;
  private nextId = 0;

  constructor(command: string, args: string[]) {
    super(command, args, { FINETORCH_FUZZ_WORKER: '1' }, 'worker', 120000);
  }

  run(format: FuzzFormat, file: string, index: number, timeoutMs: number, rssCap: number): Promise<TaskResult> {
    const id = ++this.nextId;
    this.tasks++;
    const started = Date.now();
    const pid = this.proc.pid!;
    return new Promise((resolve) => {
      let settled = false;
      const finish = (r: Omit<TaskResult, 'ms'>) => {
        if (settled) return;
        settled = true;
        clearInterval(poll);
        this.proc.off('message', onMessage);
        this.proc.off('exit', onExit);
        resolve({ ...r, ms: Date.now() - started });
      };
      // The deadline counts only time this process was responsive: while it was busy generating an
      // input for another worker, a worker's answer could not be received, so that time is not held
      // against the input.
      let last = Date.now();
      let stalled = 0;
      const poll = setInterval(() => {
        const now = Date.now();
        if (now - last > 250) stalled += now - last - 20;
        last = now;
        if (now - started - stalled > timeoutMs) {
          this.kill();
          finish({ outcome: 'hang', how: `no answer within ${timeoutMs} ms`, detail: this.stderr.slice(-2000), replace: true });
          return;
        }
        const rss = readRss(pid);
        if (rss > rssCap) {
          this.kill();
          finish({ outcome: 'big-alloc', how: `resident memory reached ${Math.round(rss / 2 ** 20)} MB while loading`, detail: '', replace: true });
        }
      }, 20);
      const onMessage = (m: ResultMessage) => {
        if (m?.type !== 'result' || m.id !== id) return;
        const peakMb = Math.round(m.maxRss / 2 ** 20);
        if (m.maxRss > rssCap) {
          finish({ outcome: 'big-alloc', how: `peak resident memory ${peakMb} MB (${m.outcome})`, detail: m.message, replace: true });
        } else if (m.outcome === 'rejected' && OOM_MESSAGE.test(m.message)) {
          finish({ outcome: 'big-alloc', how: 'failed to allocate what the file claims', detail: m.message, replace: m.rss > rssCap / 2 });
        } else {
          finish({ outcome: m.outcome, how: m.outcome === 'bad-error' ? 'improper rejection' : '', detail: m.message, replace: m.rss > rssCap / 2 });
        }
      };
      const onExit = (code: number | null, signal: string | null) => {
        const tail = this.stderr.slice(-3000);
        const oom = OOM_MESSAGE.test(tail);
        finish({
          outcome: oom ? 'big-alloc' : 'crash',
          how: `worker ${signal ? `killed by ${signal}` : `exited with code ${code}`}${oom ? ' (out of memory)' : ''}`,
          detail: tail,
          replace: true,
        });
      };
      this.proc.on('message', onMessage);
      this.proc.once('exit', onExit);
      this.proc.send({ type: 'load', id, format, file, index } satisfies LoadMessage);
    });
  }
}

/** How to start a worker: node with a 1 GB heap and gc exposed, under `prlimit --as` when a limit applies. */
export function workerCommand(options: { asLimitMb?: number; nodeArgs?: readonly string[]; workerArgv?: readonly string[] }): {
  command: string;
  args: string[];
  /** The address-space limit in force: 0 when none was asked for or prlimit is missing. */
  asLimitMb: number;
} {
  const prlimit = findPrlimit();
  const asLimitMb = prlimit ? options.asLimitMb ?? 8192 : 0;
  const nodeArgs = ['--max-old-space-size=1024', '--expose-gc', ...(options.nodeArgs ?? [])];
  const workerArgv = options.workerArgv ?? [WORKER_SCRIPT];
  const command = asLimitMb > 0 ? prlimit! : process.execPath;
  const args = asLimitMb > 0 ? [`--as=${asLimitMb * 2 ** 20}`, process.execPath, ...nodeArgs, ...workerArgv] : [...nodeArgs, ...workerArgv];
  return { command, args, asLimitMb };
}
