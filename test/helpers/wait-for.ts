// Waiting on a child process by what it says and does, never by the clock: a line on its output, a
// change in a folder. Nothing here has a deadline of its own: a child that is merely slow (a loaded
// machine) is waited for, one that exits first fails at once with its output, and a real hang is
// stopped by Jest's per-test limit.
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as readline from 'node:readline';
import type { Readable } from 'node:stream';

export interface LineWatcher {
  /** Resolves with the match once a line (from now on, or one already read) matches; rejects if the stream ends first. */
  next(pattern: RegExp, what: string): Promise<RegExpMatchArray>;
  /** Every line read so far. */
  readonly lines: readonly string[];
  /** Resolves once the stream has ended (every line read). */
  readonly ended: Promise<void>;
}

/**
 * Reads `stream` line by line from now until it ends. `next(pattern)` returns the first line not
 * yet consumed by an earlier `next` that matches, so lines that arrive before anyone asks are not lost.
 */
export function watchLines(stream: Readable, context: () => string = () => ''): LineWatcher {
  const lines: string[] = [];
  let consumed = 0;
  let done = false;
  const waiting: Array<() => void> = [];
  const wake = () => waiting.splice(0).forEach((w) => w());
  const reader = readline.createInterface({ input: stream, crlfDelay: Infinity });
  reader.on('line', (line) => {
    lines.push(line);
    wake();
  });
  const ended = new Promise<void>((resolve) =>
    reader.on('close', () => {
      done = true;
      wake();
      resolve();
    }),
  );
  return {
    lines,
    ended,
    next(pattern, what) {
      return new Promise((resolve, reject) => {
        const look = () => {
          for (; consumed < lines.length; consumed++) {
            const match = pattern.exec(lines[consumed]);
            if (match) {
              consumed++;
              resolve(match);
              return;
            }
          }
          if (done) {
            const tail = lines.slice(-20).join('\n');
            reject(new Error(`${what}: the output ended first ${context()}\nlast lines:\n${tail}`));
            return;
          }
          waiting.push(look);
        };
        look();
      });
    },
  };
}

/** Exit code and signal once the child has exited and its output streams are closed. */
export function closed(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
}

/**
 * Calls `check` now and after every change inside `dir` (inotify through fs.watch) until it returns
 * something other than undefined, and resolves with that. `dir` must exist. Rejects when `abort`
 * settles first (the child exited, say), so a condition that can no longer come true fails at once.
 */
export function whenInFolder<T>(dir: string, check: () => T | undefined, abort?: Promise<unknown>, what = 'a change'): Promise<T> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const watcher = fs.watch(dir, () => attempt());
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      watcher.close();
      fn();
    };
    function attempt(): void {
      if (settled) return;
      try {
        const value = check();
        if (value !== undefined) finish(() => resolve(value));
      } catch (error) {
        finish(() => reject(error));
      }
    }
    watcher.on('error', (error) => finish(() => reject(error)));
    abort?.then(
      () => {
        attempt(); // a last look: the change may have come with the exit
        finish(() => reject(new Error(`${what} in ${dir}: the process it depends on ended first`)));
      },
      (error) => finish(() => reject(error)),
    );
    attempt();
  });
}

const running = new Set<ChildProcess>();

/**
 * Remembers a child so that `killStragglers` (in an afterEach) can end it: a test stopped by Jest's
 * time limit never reaches its own `finally`, and a child left behind would run on after the tests.
 */
export function track<T extends ChildProcess>(child: T): T {
  running.add(child);
  child.on('exit', () => running.delete(child));
  return child;
}

/** SIGKILLs every tracked child still running (a stopped one included). */
export function killStragglers(): void {
  for (const child of running) child.kill('SIGKILL');
  running.clear();
}
