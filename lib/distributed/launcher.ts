// Our own launcher for people without Python: the local part of torchrun. It starts this machine's
// workers with torchrun's environment (RANK, WORLD_SIZE, ...), forwards the signals it receives,
// and when one worker dies stops the others, so a run never hangs on a lost rank nor leaves a
// process behind. The rendezvous itself is the workers' business (c10d's TCPStore on MASTER_ADDR).
import { spawn, type ChildProcess } from 'child_process';
import * as os from 'os';
import { DEFAULT_MASTER_PORT, threadsPerWorker } from './env';
import { boolean, integerInRange, invalid, knownKeys, nonEmptyString, nonNegativeInteger, numberInRange, oneOf, plainObject, positiveInteger } from '../utils/validate';

export interface LaunchOptions {
  /** A worker's argv: [program, ...args], e.g. [process.execPath, script, ...args]. */
  command: string[];
  /** Workers on this machine. */
  nprocPerNode: number;
  /** Machines in the run (each runs the launcher with its own nodeRank); default 1. */
  nnodes?: number;
  /** This machine's index, 0 to nnodes - 1; default 0. */
  nodeRank?: number;
  /** Where rank 0 listens for the rendezvous; default 127.0.0.1. */
  masterAddr?: string;
  /** Default 29500, torchrun's. */
  masterPort?: number;
  /** Added to the workers' environment (over this process's); undefined removes a variable. */
  env?: Record<string, string | undefined>;
  /** Where the launcher's own lines go; default stderr. */
  log?: (line: string) => void;
  /** How long stopped workers have between SIGTERM and SIGKILL; default 5000 ms. */
  graceMs?: number;
  /** Forward SIGINT, SIGTERM and SIGHUP received by this process to the workers; default true. */
  signals?: boolean;
  /** The workers' stdout and stderr: this process's (default) or none. Their stdin is never read. */
  stdio?: 'inherit' | 'ignore';
  /** Cores shared by the workers for OMP_NUM_THREADS; default this machine's. */
  cores?: number;
}

export interface WorkerExit {
  rank: number;
  localRank: number;
  /** Undefined when the worker could not be started. */
  pid: number | undefined;
  /** Exit code, or null when killed by a signal or never started. */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Why the worker could not be started. */
  startError?: string;
}

export interface LaunchResult {
  /** Every worker exited with code 0. */
  ok: boolean;
  /** The global rank of the first worker that failed (exited non-zero, was killed, or did not start). */
  failedRank?: number;
  /** Per local rank: exit code, or null when killed by a signal or never started. */
  exitCodes: (number | null)[];
  workers: WorkerExit[];
  /** The signal this launcher received and forwarded, when the run was interrupted. */
  interrupted?: NodeJS.Signals;
  /** One line for people: what happened. */
  message: string;
}

/** The CLI's failure: the message names the failed rank (exit 1) or the signal (128 + its number). */
export class LaunchFailedError extends Error {
  override name = 'LaunchFailedError';
  constructor(readonly result: LaunchResult) {
    super(result.message);
  }
  /** 1 when a rank failed; 128 + the signal's number when a signal interrupted the run (130 for SIGINT). */
  get exitCode(): number {
    const signal = this.result.interrupted;
    return signal && this.result.failedRank === undefined ? 128 + os.constants.signals[signal] : 1;
  }
}

const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
const KNOWN = ['command', 'nprocPerNode', 'nnodes', 'nodeRank', 'masterAddr', 'masterPort', 'env', 'log', 'graceMs', 'signals', 'stdio', 'cores'];

interface Resolved {
  command: string[];
  nprocPerNode: number;
  nnodes: number;
  nodeRank: number;
  masterAddr: string;
  masterPort: number;
  env: Record<string, string | undefined>;
  log: (line: string) => void;
  graceMs: number;
  signals: boolean;
  stdio: 'inherit' | 'ignore';
  cores: number;
}

function resolveOptions(options: LaunchOptions): Resolved {
  const o = plainObject('options', options);
  knownKeys('launchWorkers options', o, KNOWN);
  if (!Array.isArray(o.command) || o.command.length === 0) throw invalid('non-empty array of strings', 'command', o.command);
  o.command.forEach((part, i) => {
    if (typeof part !== 'string') throw invalid('string', `command[${i}]`, part);
  });
  nonEmptyString('command[0]', o.command[0]);
  const nnodes = o.nnodes === undefined ? 1 : positiveInteger('nnodes', o.nnodes);
  const env = o.env === undefined ? {} : plainObject('env', o.env);
  for (const [key, value] of Object.entries(env)) {
    if (value !== undefined && typeof value !== 'string') throw invalid('string or undefined', `env.${key}`, value);
  }
  if (o.log !== undefined && typeof o.log !== 'function') throw invalid('function', 'log', o.log);
  return {
    command: o.command as string[],
    nprocPerNode: positiveInteger('nprocPerNode', o.nprocPerNode),
    nnodes,
    nodeRank: o.nodeRank === undefined ? 0 : integerInRange('nodeRank', nonNegativeInteger('nodeRank', o.nodeRank), 0, nnodes - 1),
    masterAddr: o.masterAddr === undefined ? '127.0.0.1' : nonEmptyString('masterAddr', o.masterAddr),
    masterPort: o.masterPort === undefined ? DEFAULT_MASTER_PORT : integerInRange('masterPort', o.masterPort, 1, 65535),
    env: env as Record<string, string | undefined>,
    log: (o.log as ((line: string) => void) | undefined) ?? ((line: string) => void process.stderr.write(`${line}\n`)),
    graceMs: o.graceMs === undefined ? 5000 : numberInRange('graceMs', o.graceMs, 0, 2 ** 31 - 1),
    signals: o.signals === undefined ? true : boolean('signals', o.signals),
    stdio: o.stdio === undefined ? 'inherit' : oneOf('stdio', o.stdio, ['inherit', 'ignore'] as const),
    cores: o.cores === undefined ? os.availableParallelism() : positiveInteger('cores', o.cores),
  };
}

/** The environment of the worker with local rank `localRank`: this process's, the caller's additions, torchrun's variables. */
function workerEnvironment(options: Resolved, localRank: number): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [key, value] of Object.entries(options.env)) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  Object.assign(env, {
    RANK: String(options.nodeRank * options.nprocPerNode + localRank),
    WORLD_SIZE: String(options.nnodes * options.nprocPerNode),
    LOCAL_RANK: String(localRank),
    LOCAL_WORLD_SIZE: String(options.nprocPerNode),
    GROUP_RANK: String(options.nodeRank),
    MASTER_ADDR: options.masterAddr,
    MASTER_PORT: String(options.masterPort),
  });
  // N workers each with every core's worth of threads would oversubscribe the machine N times
  if (env.OMP_NUM_THREADS === undefined || env.OMP_NUM_THREADS === '') {
    env.OMP_NUM_THREADS = String(threadsPerWorker(options.cores, options.nprocPerNode));
  }
  return env;
}

interface Worker {
  exit: WorkerExit;
  child: ChildProcess | undefined;
  running: boolean;
}

function describeFailure(exit: WorkerExit): string {
  if (exit.startError !== undefined) return `rank ${exit.rank} could not be started: ${exit.startError}`;
  if (exit.signal !== null) return `rank ${exit.rank} (pid ${exit.pid}) was killed by ${exit.signal}`;
  return `rank ${exit.rank} (pid ${exit.pid}) exited with code ${exit.code}`;
}

const workersWord = (n: number) => `${n} worker${n === 1 ? '' : 's'}`;

/**
 * Starts `nprocPerNode` workers and resolves once every one has exited. Each worker leads its own
 * process group, so a terminal's Ctrl-C reaches it once (forwarded by this launcher), not twice
 * (a second SIGINT makes finetorch stop at once instead of writing its checkpoint), and stopping
 * a worker also stops whatever it started. Rejects only on invalid options, before starting anything.
 */
export function launchWorkers(options: LaunchOptions): Promise<LaunchResult> {
  let resolved: Resolved;
  try {
    resolved = resolveOptions(options);
  } catch (error) {
    return Promise.reject(error);
  }
  const o = resolved;
  return new Promise((resolve) => {
    const workers: Worker[] = [];
    let failed: WorkerExit | undefined;
    let stoppedOthers = 0;
    let interrupted: NodeJS.Signals | undefined;
    let killTimer: NodeJS.Timeout | undefined;
    let finished = false;

    const running = () => workers.filter((w) => w.running);
    const signalGroup = (w: Worker, signal: NodeJS.Signals) => {
      const pid = w.child?.pid;
      if (pid === undefined) return;
      try {
        process.kill(-pid, signal);
      } catch {
        w.child!.kill(signal); // the group is gone (or was never made): the worker alone
      }
    };
    const onSignal = (signal: NodeJS.Signals) => {
      interrupted ??= signal;
      const alive = running();
      o.log(`${signal}: forwarding it to ${workersWord(alive.length)}`);
      // to the worker alone: it decides how its own children stop (finetorch writes a checkpoint)
      for (const w of alive) w.child?.kill(signal);
    };
    // a launcher that dies of an exception or process.exit() still takes its workers along
    const onExit = () => {
      for (const w of running()) signalGroup(w, 'SIGKILL');
    };
    if (o.signals) for (const s of FORWARDED) process.on(s, onSignal);
    process.on('exit', onExit);

    const finish = () => {
      if (finished || running().length > 0) return;
      finished = true;
      if (killTimer) clearTimeout(killTimer);
      if (o.signals) for (const s of FORWARDED) process.removeListener(s, onSignal);
      process.removeListener('exit', onExit);
      const exits = workers.map((w) => w.exit);
      const ok = exits.length === o.nprocPerNode && exits.every((e) => e.code === 0);
      let message: string;
      if (ok) message = `all ${workersWord(exits.length)} exited with code 0`;
      else if (failed) message = `${describeFailure(failed)}${stoppedOthers > 0 ? `; stopped the other ${workersWord(stoppedOthers)}` : ''}`;
      else if (interrupted) message = `interrupted by ${interrupted}: exit codes ${exits.map((e) => e.code ?? e.signal).join(', ')}`;
      else message = `workers exited with ${exits.map((e) => e.code ?? e.signal).join(', ')}`;
      resolve({
        ok,
        failedRank: ok ? undefined : failed?.rank,
        exitCodes: exits.map((e) => e.code),
        workers: exits,
        interrupted: ok ? undefined : interrupted,
        message,
      });
    };

    const onWorkerEnd = (w: Worker) => {
      w.running = false;
      const e = w.exit;
      const failure = e.code !== 0;
      // after a forwarded signal non-zero exits are expected (130 after SIGINT): let every worker finish its checkpoint
      if (failure && !failed && !interrupted) {
        failed = e;
        // (a worker whose start failed too has no process to stop: its own error ends it)
        const others = running().filter((other) => other.child?.pid !== undefined);
        stoppedOthers = others.length;
        o.log(others.length > 0 ? `${describeFailure(e)}: stopping the other ${workersWord(others.length)}` : describeFailure(e));
        if (others.length > 0) {
          for (const other of others) signalGroup(other, 'SIGTERM');
          killTimer = setTimeout(() => {
            for (const other of running()) signalGroup(other, 'SIGKILL');
          }, o.graceMs);
        }
      }
      finish();
    };

    const [program, ...args] = o.command;
    o.log(`launching ${workersWord(o.nprocPerNode)} on node ${o.nodeRank} of ${o.nnodes} (world size ${o.nnodes * o.nprocPerNode}, master ${o.masterAddr}:${o.masterPort})`);
    for (let localRank = 0; localRank < o.nprocPerNode && !failed; localRank++) {
      const rank = o.nodeRank * o.nprocPerNode + localRank;
      const w: Worker = { exit: { rank, localRank, pid: undefined, code: null, signal: null }, child: undefined, running: true };
      workers.push(w);
      try {
        const child = spawn(program, args, {
          env: workerEnvironment(o, localRank),
          stdio: ['ignore', o.stdio, o.stdio],
          detached: true, // its own process group: see above
        });
        w.child = child;
        w.exit.pid = child.pid;
        child.on('error', (error) => {
          // a failure to start ('exit' never comes); errors of a running child (a failed kill) are not ends
          if (!w.running || child.pid !== undefined) return;
          w.exit.startError = error.message;
          onWorkerEnd(w);
        });
        child.once('exit', (code, signal) => {
          if (!w.running) return;
          w.exit.code = code;
          w.exit.signal = signal;
          onWorkerEnd(w);
        });
      } catch (error) {
        w.exit.startError = (error as Error).message;
        onWorkerEnd(w);
      }
    }
  });
}

const LAUNCHER_FLAGS = ['--nproc-per-node', '--nnodes', '--node-rank', '--master-addr', '--master-port'];

/**
 * A worker's arguments: the launcher's own argv without the five launcher options and their values
 * (`--nnodes 2` and `--nnodes=2`). `valueFlags` lists the command's other options that take a value,
 * so that a value which looks like a launcher option (`--name --nnodes`) is kept as the value it is.
 * Everything after `--` is positional and kept.
 */
export function withoutLauncherOptions(argv: readonly string[], valueFlags: readonly string[] = []): string[] {
  const kept: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      kept.push(...argv.slice(i));
      break;
    }
    const flag = arg.split('=', 1)[0];
    if (LAUNCHER_FLAGS.includes(flag)) {
      if (!arg.includes('=')) i++; // its value
      continue;
    }
    kept.push(arg);
    if (valueFlags.includes(arg) && i + 1 < argv.length) kept.push(argv[++i]);
  }
  return kept;
}
