// What both fuzzers' parents share about their worker children: finding prlimit(1) for an
// address-space cap, and a child on an IPC channel that says 'ready' once it has loaded (its
// stderr's tail kept for the report), and the flag readers of their command lines.
import { spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

export function findPrlimit(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter).concat(['/usr/bin', '/bin'])) {
    const p = path.join(dir, 'prlimit');
    if (fs.existsSync(p)) return p;
  }
  return undefined;
}

export class IpcChild {
  readonly proc: ChildProcess;
  /** Resolves on the child's { type: 'ready' } message; rejects if it exits or stays silent first. */
  readonly ready: Promise<void>;
  stderr = '';
  exited = false;

  constructor(command: string, args: string[], env: NodeJS.ProcessEnv, label: string, startTimeoutMs: number) {
    this.proc = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], env: { ...process.env, ...env } });
    this.proc.stderr!.on('data', (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString('utf8')).slice(-8000);
    });
    this.proc.on('exit', () => (this.exited = true));
    this.proc.on('error', () => (this.exited = true));
    this.ready = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${label} did not start in ${startTimeoutMs / 1000} s: ${this.stderr}`)), startTimeoutMs);
      const onMessage = (m: { type?: string }) => {
        if (m?.type !== 'ready') return;
        clearTimeout(timer);
        this.proc.off('exit', onExit);
        this.proc.off('message', onMessage);
        resolve();
      };
      const onExit = (code: number | null, signal: string | null) => {
        clearTimeout(timer);
        reject(new Error(`${label} exited while starting (${signal ?? `code ${code}`}): ${this.stderr.trim() || 'no output'}`));
      };
      this.proc.on('message', onMessage);
      this.proc.once('exit', onExit);
    });
  }

  kill(): void {
    if (!this.exited) this.proc.kill('SIGKILL');
  }
}

/** `--flag VALUE` readers for the fuzzers' command lines, with errors that name the flag. */
export function flagReader(argv: string[]) {
  return {
    value(i: number, name: string): string {
      const v = argv[i + 1];
      if (v === undefined) throw new Error(`${name} needs a value`);
      return v;
    },
    int(v: string, name: string, min = 0): number {
      const n = Number(v);
      if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be an integer >= ${min}, got '${v}'`);
      return n;
    },
  };
}
