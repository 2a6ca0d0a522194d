// The API fuzzer's command line: random sequences of public calls (fast-check), each run in a
// worker child; prints one summary line and exits 0 only when there was no crash, abort, hang or
// finding. What is called: catalogue.ts; how sequences are made: arbitraries.ts.
//
//   node dist/scripts/api-fuzz/cli.js --calls 100000 --seed 1 [--timeout-ms 30000]
//
// Options:
//   --calls N          calls in all (default 10000)
//   --seed S           fast-check's seed (default 1): the same seed makes the same sequences
//   --timeout-ms MS    time one call may take (per invocation: times: n allows n) before its
//                      sequence counts as a hang (default 30000)
//   --max-length N     longest sequence (default 80)
//   --shrink-ms MS     time spent shrinking each distinct failure (default 180000; 0: no shrinking)
//   --findings DIR     where failures' regression files go (default: a new temp folder)
//   --json FILE        the whole report as JSON
//   --workers N        worker children running sequences side by side (default 1)
//   --threads N        libtorch threads in each child (default 1)
//   --replay FILE      run one regression file's sequence and print the result
//   --quiet            no progress lines
import * as fs from 'fs';
import { flagReader } from '../fuzz/child-process';
import type { Sequence } from './calls';
import { replaySequence, runApiFuzz, summaryLine, type ApiFuzzOptions, type RegressionFile } from './runner';

function parseArgs(argv: string[]): { options: ApiFuzzOptions; json?: string; replay?: string } {
  const options: ApiFuzzOptions = {};
  let json: string | undefined;
  let replay: string | undefined;
  const { value, int } = flagReader(argv);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    switch (a) {
      case '--calls': options.calls = int(value(i++, a), a, 1); break;
      case '--seed': options.seed = int(value(i++, a), a); break;
      case '--timeout-ms': options.timeoutMs = int(value(i++, a), a, 1); break;
      case '--max-length': options.maxLength = int(value(i++, a), a, 1); break;
      case '--shrink-ms': options.shrinkMs = int(value(i++, a), a); break;
      case '--findings': options.findingsDir = value(i++, a); break;
      case '--json': json = value(i++, a); break;
      case '--threads': options.threads = int(value(i++, a), a, 1); break;
      case '--workers': options.workers = int(value(i++, a), a, 1); break;
      case '--replay': replay = value(i++, a); break;
      case '--quiet': options.quiet = true; break;
      case '-h':
      case '--help':
        throw new Error('usage: api-fuzz [--calls N] [--seed S] [--timeout-ms MS] [--max-length N] [--shrink-ms MS] [--findings DIR] [--json FILE] [--workers N] [--threads N] [--replay FILE] [--quiet]');
      default:
        throw new Error(`unknown argument '${a}' (try --help)`);
    }
  }
  return { options, json, replay };
}

export async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs(argv);
  } catch (e) {
    console.error((e as Error).message);
    return 2;
  }
  const { options, json, replay } = parsed;
  if (replay) {
    const file = JSON.parse(fs.readFileSync(replay, 'utf8')) as RegressionFile | Sequence;
    const sequence = Array.isArray(file) ? file : file.sequence;
    const r = await replaySequence(sequence, options);
    console.log(JSON.stringify(r, null, 2));
    return r.verdict === 'ok' ? 0 : 1;
  }
  const report = await runApiFuzz(options);
  if (json) fs.writeFileSync(json, `${JSON.stringify(report, null, 2)}\n`);
  for (const f of report.failures) console.log(`${f.verdict}: ${f.how} -> ${f.file}`);
  console.log(summaryLine(report));
  console.log(`(${(report.durationMs / 1000).toFixed(0)} s, ${report.restarts} worker restarts, seed ${report.seed})`);
  return report.crashes + report.aborts + report.hangs + report.findings === 0 ? 0 : 1;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (e) => {
      console.error(e instanceof Error ? e.stack : e);
      process.exitCode = 2;
    },
  );
}
