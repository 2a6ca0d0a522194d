// Real processes of a distributed run on loopback: a free port for the rendezvous, and N ranks
// started with torchrun's environment, each watched until it exits.
import { spawn, type ChildProcess } from 'node:child_process';

export { freePort } from '../../lib/distributed/free-port';

export interface RankExit {
  rank: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  stdout: string;
  /** When it exited, by the test's clock (ms since epoch). */
  exitedAt: number;
}

export interface RunningRank {
  rank: number;
  child: ChildProcess;
  exited: Promise<RankExit>;
}

/** Starts `worldSize` ranks of `argv` (node with these arguments) with torchrun's variables set. */
export function startRanks(argv: string[], options: { worldSize: number; port: number; env?: NodeJS.ProcessEnv; cwd?: string }): RunningRank[] {
  return Array.from({ length: options.worldSize }, (_, rank) => {
    const child = spawn(process.execPath, argv, {
      cwd: options.cwd,
      env: {
        ...process.env, ...options.env,
        RANK: String(rank), WORLD_SIZE: String(options.worldSize), LOCAL_RANK: String(rank), LOCAL_WORLD_SIZE: String(options.worldSize),
        MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(options.port), OMP_NUM_THREADS: '1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<RankExit>((resolve) => {
      child.on('close', (code, signal) => resolve({ rank, code, signal, stdout, stderr, exitedAt: Date.now() }));
    });
    return { rank, child, exited };
  });
}

/** Every rank's exit. */
export function allExited(ranks: RunningRank[]): Promise<RankExit[]> {
  return Promise.all(ranks.map((r) => r.exited));
}
