// The finetorch CLI as users run it: `node dist/scripts/cli.js ...` in a child process, with its own
// environment, exit code, stdout and stderr. Asynchronous (never spawnSync), so that a loopback
// server in the test's own process can answer the child's downloads.
//
// dist/ is what runs, so a dist/ older than the sources would test old code: builtCliProblem() says
// when dist/ is missing or stale (for prerequisite(): a skip locally, a failure where CI is set).
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const ROOT = path.resolve(__dirname, '..', '..');
export const CLI = path.join(ROOT, 'dist', 'scripts', 'cli.js');

function sources(dir: string, out: string[] = []): string[] {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) sources(p, out);
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** Null when dist/ holds a compiled file at least as new as each source in lib/, binding/ and scripts/; else why not. */
export function builtCliProblem(): string | null {
  if (!fs.existsSync(CLI)) return `${path.relative(ROOT, CLI)} is not built (npx tsc -p . or npm test compiles it)`;
  const stale: string[] = [];
  for (const folder of ['lib', 'binding', 'scripts']) {
    const dir = path.join(ROOT, folder);
    if (!fs.existsSync(dir)) continue;
    for (const source of sources(dir)) {
      const rel = path.relative(ROOT, source);
      const compiled = path.join(ROOT, 'dist', rel.replace(/\.ts$/, '.js'));
      const built = fs.statSync(compiled, { throwIfNoEntry: false });
      if (!built || built.mtimeMs < fs.statSync(source).mtimeMs) stale.push(rel);
    }
  }
  if (stale.length === 0) return null;
  return `dist/ is older than ${stale.slice(0, 3).join(', ')}${stale.length > 3 ? ` and ${stale.length - 3} more` : ''} (npx tsc -p . to rebuild)`;
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  out: string;
  err: string;
}

export interface CliOptions {
  /** Added to the environment (undefined removes a variable). */
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Another copy of the CLI to run (default: the checkout's dist/scripts/cli.js). */
  cli?: string;
  /** Modules loaded with `node -r` before the CLI. */
  preload?: string[];
}

/** Variables of the caller's environment that would change what the CLI under test fetches or where it writes. */
const SCRUBBED = ['FINETORCH_WEIGHTS_BASE_URL', 'TORCH_HOME', 'XDG_CACHE_HOME', 'http_proxy', 'https_proxy', 'HTTP_PROXY', 'HTTPS_PROXY'];

/** Runs `node dist/scripts/cli.js ...args` and resolves once it has exited and its output is read. */
export function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const key of SCRUBBED) delete env[key];
  for (const [key, value] of Object.entries(options.env ?? {})) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  const preload = (options.preload ?? []).flatMap((m) => ['-r', m]);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...preload, options.cli ?? CLI, ...args], { cwd: options.cwd ?? ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, out, err }));
  });
}

/** Fails with the child's output when it did not exit with `code`. */
export function expectExit(result: CliResult, code: number, what: string): void {
  if (result.code !== code) {
    throw new Error(`${what}: expected exit code ${code}, got ${result.code ?? result.signal}\n--- stdout\n${result.out}\n--- stderr\n${result.err}`);
  }
}
