// The short (CI) mode of scripts/api-fuzz/: random sequences of public calls with a fixed seed, run
// in a worker child, must never crash, abort or hang the process, and every failure must be a JS
// Error with a message. Then every sequence in regressions/ (shrunk counterexamples and known
// misuses) is replayed the same way. The workers run the TypeScript sources through
// test/fuzz/ts-register.js, so the test does not depend on an up-to-date dist/.
// FINETORCH_API_FUZZ_CALLS overrides the number of calls (default 1000).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ChildRunner, describeCall, OP_NAMES, runApiFuzz, summaryLine, type ApiFuzzReport, type RegressionFile } from '../../scripts/api-fuzz';

const calls = Number(process.env.FINETORCH_API_FUZZ_CALLS ?? 1000);
const nodeArgs = ['-r', path.join(__dirname, '..', 'fuzz', 'ts-register.js')];
// Generous: only a wedged call reaches it. Nothing in these tests waits on time to synchronise.
const timeoutMs = 120000;

// One worker child serves both the fuzz run and the replays (starting one costs seconds).
let runner: ChildRunner;
let scratch: string;
beforeAll(() => {
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-api-fuzz-test-'));
  runner = new ChildRunner({ scratch, nodeArgs });
});
afterAll(() => {
  runner.close();
  fs.rmSync(scratch, { recursive: true, force: true });
});

describe(`API-sequence fuzzing (${calls} calls, seed 1)`, () => {
  let report: ApiFuzzReport;
  let findings: string;

  beforeAll(async () => {
    findings = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-api-fuzz-findings-'));
    const lines: string[] = [];
    report = await runApiFuzz({ calls, seed: 1, timeoutMs, runner, shrinkMs: 0, findingsDir: findings, quiet: true, log: (l) => lines.push(l) });
    if (lines.length) process.stderr.write(`${lines.join('\n')}\n`);
  }, 900000);

  afterAll(() => {
    if (report?.failures.length === 0) fs.rmSync(findings, { recursive: true, force: true });
  });

  test('no crash, abort, hang, or thrown non-Error', () => {
    const failures = report.failures.map((f) => `${f.verdict} at call ${f.call}: ${f.how}\n  ${f.sequence.map(describeCall).join('\n  ')}\n  (${f.file})`);
    expect({ failures, summary: summaryLine(report) }).toEqual({ failures: [], summary: expect.stringContaining('0 crashes, 0 aborts, 0 hangs, 0 findings') });
    expect(report.calls).toBe(calls);
  });

  test('the sequences reach both outcomes: calls that succeed and misuses that throw', () => {
    expect(report.ok).toBeGreaterThan(calls / 5);
    expect(report.errors).toBeGreaterThan(calls / 20);
    // deep states were reached: these succeeded at least once, and use after dispose() was refused
    const succeeded = Object.entries(report.byOp).filter(([, [ok]]) => ok > 0).map(([op]) => op);
    for (const op of ['createModel', 'model.forward', 'trainStep', 'evalStep', 'createOptimizer', 'optimizer.loadStateDict', 'loader.next']) {
      expect(succeeded).toContain(op);
    }
    const messages = report.topErrors.map(([m]) => m).join('\n');
    expect(messages).toMatch(/used after dispose\(\)/);
  });
});

describe('regressions (test/api-fuzz/regressions/*.json)', () => {
  const dir = path.join(__dirname, 'regressions');
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort();

  test('there are some, naming only known operations', () => {
    expect(files.length).toBeGreaterThanOrEqual(2);
    for (const file of files) {
      const r = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as RegressionFile;
      for (const call of r.sequence) expect(OP_NAMES).toContain(call.op);
    }
  });

  test.each(files)('%s', async (file) => {
    const r = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as RegressionFile;
    const result = await runner.run(r.sequence, timeoutMs);
    expect({ verdict: result.verdict, how: result.how }).toEqual({ verdict: 'ok', how: '' });
    const messages = Object.keys(result.stats!.errors).join('\n');
    for (const text of r.expectMessages ?? []) expect(messages).toContain(text);
  });
});
