// The short (CI) mode of scripts/fuzz/: mutated inputs of every format finetorch reads, each
// loaded in a worker process, must be accepted or rejected with an Error: no crash, no hang, no
// allocation over the memory cap. The workers run the TypeScript sources directly: the default
// worker script is scripts/fuzz/worker.ts here (next to the .ts runner), loaded through ts-register.js.
// FINETORCH_FUZZ_COUNT overrides the inputs per format (default 300).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { FORMATS, formatTable, runFuzz, type FuzzReport } from '../../scripts/fuzz';

const count = Number(process.env.FINETORCH_FUZZ_COUNT ?? 300);
let findings: string;
let report: FuzzReport;

beforeAll(async () => {
  findings = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-fuzz-test-'));
  const lines: string[] = [];
  report = await runFuzz({
    formats: FORMATS,
    count,
    seed: 1,
    timeoutMs: 10000,
    workers: Math.min(2, os.cpus().length),
    findingsDir: findings,
    quiet: true,
    nodeArgs: ['-r', path.join(__dirname, 'ts-register.js')],
    log: (line) => lines.push(line),
  });
  if (lines.length) process.stderr.write(`${lines.join('\n')}\n`);
}, 600000);

afterAll(() => {
  const clean = report && report.totals.crashes + report.totals.hangs + report.totals.bigAlloc + report.totals.badErrors === 0;
  if (clean) fs.rmSync(findings, { recursive: true, force: true });
});

describe(`fuzzing every format (${count} inputs each)`, () => {
  test('no crashes, hangs, big allocations or improper rejections', () => {
    const summary = formatTable(report);
    const bad = Object.entries(report.formats).flatMap(([, s]) => s!.findings.map((f) => `${f.format} #${f.index}: ${f.outcome}: ${f.how} (${f.file})`));
    expect({ findings: bad, summary }).toEqual({ findings: [], summary });
    expect(report.totals.inputs).toBe(count * FORMATS.length);
  });

  test.each(FORMATS)('%s: mutations reach both outcomes', (format) => {
    const s = report.formats[format]!;
    expect(s.inputs).toBe(count);
    // the seeds still load after light mutations, and the loader refuses the broken ones
    expect(s.accepted).toBeGreaterThan(0);
    expect(s.rejected).toBeGreaterThan(0);
    expect(s.accepted + s.rejected).toBe(count);
  });
});
