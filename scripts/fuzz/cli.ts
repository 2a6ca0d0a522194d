// The fuzzer's command line: parses the options, runs the fuzz (or replays one file through a
// worker) and prints the table. What is fuzzed and how outcomes are classified: see index.ts.
//
//   node dist/scripts/fuzz/cli.js --format all --count 10000 --seed 1 [--timeout-ms 5000]
//
// Options:
//   --format LIST      comma-separated formats, or 'all' (default)
//   --count N          inputs per format (default 10000; CI uses 300)
//   --seed S           the run's seed (default 1); input i of format f is a pure function of (S, f, i)
//   --timeout-ms MS    per-input time limit (default 5000)
//   --workers N        worker processes (default: CPU count)
//   --rss-cap-mb MB    resident memory cap per worker (default 1536)
//   --as-limit-mb MB   address-space limit per worker via prlimit (default 8192; 0 = none)
//   --findings DIR     where findings go (default: a new temp folder)
//   --json FILE        the report as JSON (default: DIR/fuzz-report.json)
//   --only F:I         generate and run only input I of format F, saving it to the findings folder
//   --replay FILE --format F   run one file through format F's loader
//   --quiet            no progress lines
import * as path from 'path';
import { flagReader } from './child-process';
import { FORMATS, type FuzzFormat } from './formats';
import { FINDINGS, formatTable } from './report';
import { runFuzz, type FuzzOptions } from './runner';
import { Worker, workerCommand } from './worker-process';

function parseArgs(argv: string[]): { options: FuzzOptions; replay?: string } {
  const options: FuzzOptions = {};
  let replay: string | undefined;
  const { value, int } = flagReader(argv);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    switch (a) {
      case '--format': {
        const v = value(i++, a);
        const list = v === 'all' ? [...FORMATS] : v.split(',').map((s) => s.trim());
        for (const f of list) if (!(FORMATS as readonly string[]).includes(f)) throw new Error(`unknown format '${f}' (known: ${FORMATS.join(', ')}, all)`);
        options.formats = list as FuzzFormat[];
        break;
      }
      case '--count': options.count = int(value(i++, a), a, 1); break;
      case '--seed': options.seed = int(value(i++, a), a); break;
      case '--timeout-ms': options.timeoutMs = int(value(i++, a), a, 1); break;
      case '--workers': options.workers = int(value(i++, a), a, 1); break;
      case '--rss-cap-mb': options.rssCapMb = int(value(i++, a), a, 64); break;
      case '--as-limit-mb': options.asLimitMb = int(value(i++, a), a); break;
      case '--findings': options.findingsDir = value(i++, a); break;
      case '--json': options.jsonFile = value(i++, a); break;
      case '--quiet': options.quiet = true; break;
      case '--only': {
        const [f, idx] = value(i++, a).split(':');
        if (!(FORMATS as readonly string[]).includes(f)) throw new Error(`--only wants FORMAT:INDEX, got '${argv[i]}'`);
        options.formats = [f as FuzzFormat];
        options.indices = [int(idx, a)];
        break;
      }
      case '--replay': replay = value(i++, a); break;
      case '-h':
      case '--help':
        throw new Error('usage: fuzz [--format all|zip,legacy,...] [--count N] [--seed S] [--timeout-ms MS] [--workers N] [--rss-cap-mb MB] [--as-limit-mb MB] [--findings DIR] [--json FILE] [--only FORMAT:INDEX] [--replay FILE --format F] [--quiet]');
      default: throw new Error(`unknown argument '${a}' (try --help)`);
    }
  }
  return { options, replay };
}

/** Runs one existing file through a worker (for findings). */
async function replayFile(file: string, format: FuzzFormat, options: FuzzOptions): Promise<number> {
  const { command, args } = workerCommand(options);
  const w = new Worker(command, args);
  await w.ready;
  const r = await w.run(format, path.resolve(file), 0, options.timeoutMs ?? 5000, (options.rssCapMb ?? 1536) * 2 ** 20);
  w.kill();
  console.log(JSON.stringify({ file, format, ...r, detail: r.detail.slice(0, 3000) }, null, 2));
  return FINDINGS.includes(r.outcome) ? 1 : 0;
}

export async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs(argv);
  } catch (e) {
    console.error((e as Error).message);
    return 2;
  }
  const { options, replay } = parsed;
  if (replay) {
    if (options.formats?.length !== 1) {
      console.error('--replay needs --format with one format');
      return 2;
    }
    return replayFile(replay, options.formats[0], options);
  }
  const report = await runFuzz(options);
  console.log(formatTable(report));
  const findings = report.totals.crashes + report.totals.hangs + report.totals.bigAlloc + report.totals.badErrors;
  console.log(`\nreport: ${report.jsonFile}`);
  console.log(findings ? `${findings} finding(s) saved in ${report.findingsDir}` : `no findings (findings folder: ${report.findingsDir})`);
  return findings ? 1 : 0;
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
