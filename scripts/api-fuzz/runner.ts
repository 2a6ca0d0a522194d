// An API-fuzz run, parent side: fast-check generates sequences of calls from a seed (fc.sample: its
// i-th value is fc.check's run i with the same seed), a pool of worker children runs them, and the
// verdicts are tallied; nothing stops the main run (every sequence is run and counted). Afterwards
// each distinct failure is replayed with fc.check from its seed and path (the run index) and shrunk
// to a minimal sequence that fails the same way, written as a regression file for
// test/api-fuzz/regressions/.
import fc from 'fast-check';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { sequenceArbitrary } from './arbitraries';
import { describeCall, type Sequence } from './calls';
import { ChildRunner, FAILURES, type ChildOptions, type SequenceResult, type Verdict } from './child';

export interface ApiFuzzOptions extends Omit<ChildOptions, 'scratch'> {
  /** Calls to run in all (default 10000). */
  calls?: number;
  seed?: number;
  /** Time one call may take, per invocation it starts or waits for, before the sequence counts as a hang (default 30000 ms). */
  timeoutMs?: number;
  /** Longest sequence generated (default 80 calls). */
  maxLength?: number;
  /** Time spent shrinking each failure (default 180000 ms); 0 skips shrinking. */
  shrinkMs?: number;
  /** Distinct failures to shrink (default 5). */
  maxShrinks?: number;
  /** Where failures' regression files go (default: a new temp folder, created only when needed). */
  findingsDir?: string;
  /** Progress and findings (default: stderr). */
  log?: (line: string) => void;
  quiet?: boolean;
  /** Worker children running sequences side by side (default 1). */
  workers?: number;
  /** Run in this child runner (left open) instead of new ones; implies one worker. */
  runner?: ChildRunner;
}

export interface Failure {
  verdict: Verdict;
  how: string;
  /** Index of the failing call in `sequence`. */
  call: number;
  sequence: Sequence;
  /** fast-check's replay coordinates of the original sequence. */
  seed: number;
  path: string;
  stderr: string;
  shrunk?: { sequence: Sequence; how: string; call: number; shrinks: number };
  /** The regression file written for it. */
  file?: string;
}

export interface ApiFuzzReport {
  seed: number;
  calls: number;
  sequences: number;
  /** Calls that returned / failed with a proper JS Error / were skipped by the harness (no receiver yet). */
  ok: number;
  errors: number;
  skipped: number;
  crashes: number;
  aborts: number;
  hangs: number;
  findings: number;
  /** Normalised error messages, most frequent first. */
  topErrors: Array<[string, number]>;
  /** Per operation: [succeeded, JS Errors, skipped] invocations. */
  byOp: Record<string, [number, number, number]>;
  failures: Failure[];
  restarts: number;
  durationMs: number;
}

/** The property a shrunk sequence must keep failing: the same verdict, and the same signal/kind. */
function sameFailure(a: Pick<SequenceResult, 'verdict' | 'how'>, b: Pick<SequenceResult, 'verdict' | 'how'>): boolean {
  if (a.verdict !== b.verdict) return false;
  const kind = (how: string) => (/^(killed by \w+|exited with code \d+|[a-z ]+:)/.exec(how)?.[0] ?? how);
  return a.verdict === 'hang' || kind(a.how) === kind(b.how);
}

export function signature(f: Pick<Failure, 'verdict' | 'how' | 'call' | 'sequence'>): string {
  return `${f.verdict} ${f.how.replace(/\d+/g, '#').slice(0, 80)} in ${f.sequence[f.call]?.op ?? 'the end of the sequence'}`;
}

export function summaryLine(r: ApiFuzzReport): string {
  const top = r.topErrors
    .slice(0, 5)
    .map(([m, n]) => `${n}x "${m}"`)
    .join('; ');
  return (
    `api-fuzz: ${r.calls} calls in ${r.sequences} sequences: ${r.crashes} crashes, ${r.aborts} aborts, ${r.hangs} hangs, ${r.findings} findings; ` +
    `${r.errors} JS Errors, ${r.ok} succeeded, ${r.skipped} skipped (per invocation, repeats included) (top messages: ${top || 'none'})`
  );
}

/** Runs `sequence` once in a fresh runner (for regression tests and --replay). */
export async function replaySequence(sequence: Sequence, options: Omit<ApiFuzzOptions, 'calls'> = {}): Promise<SequenceResult> {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-api-fuzz-'));
  const runner = new ChildRunner({ ...options, scratch });
  try {
    return await runner.run(sequence, options.timeoutMs ?? 30000);
  } finally {
    runner.close();
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

export async function runApiFuzz(options: ApiFuzzOptions = {}): Promise<ApiFuzzReport> {
  const budget = options.calls ?? 10000;
  const seed = options.seed ?? 1;
  const timeoutMs = options.timeoutMs ?? 30000;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const arbitrary = sequenceArbitrary(options.maxLength ?? 80);
  const scratch = options.runner ? undefined : fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-api-fuzz-'));
  const runners = options.runner ? [options.runner] : Array.from({ length: Math.max(1, options.workers ?? 1) }, () => new ChildRunner({ ...options, scratch: scratch! }));
  const runner = runners[0]; // shrinking replays run here
  const restartsBefore = runners.reduce((n, r) => n + r.restarts, 0);
  const started = Date.now();
  const report: ApiFuzzReport = {
    seed, calls: 0, sequences: 0, ok: 0, errors: 0, skipped: 0, crashes: 0, aborts: 0, hangs: 0, findings: 0, topErrors: [], byOp: {}, failures: [], restarts: 0, durationMs: 0,
  };
  const messages = new Map<string, number>();
  const counters: Record<Exclude<Verdict, 'ok'>, 'crashes' | 'aborts' | 'hangs' | 'findings'> = { crash: 'crashes', abort: 'aborts', hang: 'hangs', finding: 'findings' };
  let lastProgress = Date.now();
  let harnessError: unknown;

  const record = (r: SequenceResult, sequence: Sequence, roundSeed: number, index: number): void => {
    report.sequences++;
    if (r.stats) {
      report.ok += r.stats.ok;
      report.skipped += r.stats.skipped;
      for (const [m, n] of Object.entries(r.stats.errors)) {
        report.errors += n;
        messages.set(m, (messages.get(m) ?? 0) + n);
      }
      // calls after a finding in the same sequence still count; each finding is one
      report.findings += r.stats.findings.length;
      for (const [op, [ok, err, skipped]] of Object.entries(r.stats.byOp)) {
        const t = (report.byOp[op] ??= [0, 0, 0]);
        t[0] += ok;
        t[1] += err;
        t[2] += skipped;
      }
    }
    if (r.verdict !== 'ok') {
      if (r.verdict !== 'finding') report[counters[r.verdict]]++;
      report.failures.push({ verdict: r.verdict, how: r.how, call: r.call, sequence, seed: roundSeed, path: String(index), stderr: r.stderr });
      log(`[api-fuzz] ${r.verdict.toUpperCase()} in sequence ${index} of seed ${roundSeed} at call ${r.call} (${describeCall(sequence[r.call] ?? { op: 'awaitAll', args: [] })}): ${r.how}`);
    }
    if (!options.quiet && Date.now() - lastProgress > 30000) {
      lastProgress = Date.now();
      const failures = report.crashes + report.aborts + report.hangs + report.findings;
      log(`[api-fuzz] ${report.calls}/${budget} calls sent, ${report.sequences} sequences done, ${failures} failures, ${report.errors} JS Errors, ${((Date.now() - started) / 1000).toFixed(0)} s`);
    }
  };

  try {
    // fc.sample draws a fixed number of sequences; their mean length decides how many make the
    // budget. Rounds with derived seeds continue until it is spent (usually one round does).
    const mean = fc.sample(arbitrary, { seed: seed ^ 0x5eed, numRuns: 200 }).reduce((a, s) => a + s.length, 0) / 200;
    for (let round = 0; report.calls < budget && !harnessError; round++) {
      const roundSeed = round === 0 ? seed : (seed + round * 1000003) | 0;
      const numRuns = Math.ceil(((budget - report.calls) / Math.max(1, mean)) * 1.25) + 5;
      const sequences = fc.sample(arbitrary, { seed: roundSeed, numRuns });
      let next = 0;
      const work = async (worker: ChildRunner): Promise<void> => {
        while (report.calls < budget && !harnessError && next < sequences.length) {
          const index = next++;
          const sequence = sequences[index].slice(0, budget - report.calls);
          report.calls += sequence.length; // taken from the budget when sent, so the sequences run do not depend on timing
          let r: SequenceResult;
          try {
            r = await worker.run(sequence, timeoutMs);
          } catch (e) {
            harnessError = e; // a worker cannot start: the end of the run
            return;
          }
          record(r, sequence, roundSeed, index);
        }
      };
      await Promise.all(runners.map(work));
    }
    if (harnessError) throw harnessError;

    // shrink each distinct failure from fast-check's replay coordinates
    const shrinkMs = options.shrinkMs ?? 180000;
    const seen = new Set<string>();
    for (const failure of report.failures) {
      const key = signature(failure);
      if (shrinkMs <= 0 || seen.has(key) || seen.size >= (options.maxShrinks ?? 5)) continue;
      seen.add(key);
      log(`[api-fuzz] shrinking: ${key} (${failure.sequence.length} calls)`);
      let last: SequenceResult | undefined;
      const property = fc.asyncProperty(arbitrary, async (sequence) => {
        if (harnessError) return true;
        let r: SequenceResult;
        try {
          r = await runner.run(sequence, timeoutMs);
        } catch (e) {
          harnessError = e;
          return true;
        }
        if (sameFailure(r, failure)) {
          last = r;
          return false;
        }
        return true;
      });
      const details = await fc.check(property, { seed: failure.seed, path: failure.path, plugins: [fc.interruptAfterTimeLimit(shrinkMs)] });
      if (harnessError) throw harnessError;
      if (details.failed && details.counterexample && last) {
        // fast-check shrinks one part of the generated value at a time; finish greedily: drop single
        // calls, and the spawn/times flags, while the sequence still fails the same way
        const deadline = Date.now() + shrinkMs / 2;
        const fails = async (candidate: Sequence) => {
          const r = await runner.run(candidate, timeoutMs);
          if (sameFailure(r, failure)) last = r;
          return sameFailure(r, failure);
        };
        const sequence = await minimise((details.counterexample as [Sequence])[0], fails, deadline);
        failure.shrunk = { sequence, how: last.how, call: last.call, shrinks: details.numShrinks };
        log(`[api-fuzz] shrunk to ${sequence.length} calls (${details.numShrinks} shrinks): ${sequence.map(describeCall).join('; ')}`);
      } else {
        log('[api-fuzz] the failure did not reproduce when replayed; keeping the original sequence');
      }
    }
    if (report.failures.length) {
      const dir = options.findingsDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-api-fuzz-findings-'));
      fs.mkdirSync(dir, { recursive: true });
      report.failures.forEach((f, i) => {
        f.file = path.join(dir, `${f.verdict}-${i + 1}.json`);
        fs.writeFileSync(f.file, `${JSON.stringify(regressionFile(f), null, 2)}\n`);
      });
    }
  } finally {
    if (scratch) {
      for (const r of runners) r.close();
      fs.rmSync(scratch, { recursive: true, force: true });
    }
  }
  report.topErrors = [...messages].sort((a, b) => b[1] - a[1]).slice(0, 20);
  report.restarts = runners.reduce((n, r) => n + r.restarts, 0) - restartsBefore;
  report.durationMs = Date.now() - started;
  return report;
}

/** Removes calls and flags one at a time while `fails` still holds, until nothing more goes or time is up. */
async function minimise(sequence: Sequence, fails: (s: Sequence) => Promise<boolean>, deadline: number): Promise<Sequence> {
  let current = sequence;
  for (let changed = true; changed && Date.now() < deadline; ) {
    changed = false;
    for (let i = current.length - 1; i >= 0 && Date.now() < deadline; i--) {
      const { op, args, spawn, times } = current[i];
      const candidates = [current.filter((_, j) => j !== i)];
      if (spawn || times) candidates.push(current.map((c, j) => (j === i ? { op, args } : c)));
      for (const candidate of candidates) {
        if (candidate.length > 0 && (await fails(candidate))) {
          current = candidate;
          changed = true;
          break;
        }
      }
    }
  }
  return current;
}

/** What test/api-fuzz/regressions/*.json hold. */
export interface RegressionFile {
  description: string;
  /** How it failed when found (for the record; the replay must not fail at all). */
  found?: { verdict: Verdict; how: string; seed: number; path: string };
  sequence: Sequence;
  /** Texts that must appear among the sequence's JS Error messages (e.g. 'used after dispose()'). */
  expectMessages?: string[];
}

function regressionFile(f: Failure): RegressionFile {
  const sequence = f.shrunk?.sequence ?? f.sequence;
  const call = f.shrunk?.call ?? f.call;
  return {
    description: `${f.verdict} at call ${call} (${sequence[call]?.op ?? 'end of sequence'}): ${f.shrunk?.how ?? f.how}`,
    found: { verdict: f.verdict, how: f.how, seed: f.seed, path: f.path },
    sequence,
  };
}

export { FAILURES };
