// The worker's side of torchrun's contract: which process of a distributed run this one is, read
// from the environment that torchrun, our own launcher, Kubeflow's PyTorchJob or Slurm's srun set.
// Pure: no process group is made here, so the same answers can be tested with plain objects.
import * as os from 'os';

export interface DistributedEnv {
  /** This process's rank among all processes, 0 to worldSize - 1. */
  rank: number;
  worldSize: number;
  /** This process's rank among those on its machine (its GPU is cuda:localRank). */
  localRank: number;
  localWorldSize: number;
  /** This machine's index among the machines of the run. */
  nodeRank: number;
  /** Where rank 0 listens for the rendezvous (c10d's TCPStore). */
  masterAddr: string;
  masterPort: number;
  /** Which convention the values came from. */
  source: 'torchrun' | 'slurm';
}

/** torchrun's default port, which Slurm runs use unless MASTER_PORT says otherwise. */
export const DEFAULT_MASTER_PORT = 29500;

type Env = Record<string, string | undefined>;

/** A variable's value, or undefined when it is unset or empty (an empty export means unset to a shell user). */
function read(env: Env, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

function nonNegativeIntegerVar(env: Env, name: string): number | undefined {
  const raw = read(env, name);
  if (raw === undefined) return undefined;
  if (!/^\d+$/.test(raw)) throw new Error(`Expected ${name} to be a non-negative integer but received '${env[name]}'`);
  return Number(raw);
}

function positiveIntegerVar(env: Env, name: string): number | undefined {
  const value = nonNegativeIntegerVar(env, name);
  if (value === 0) throw new Error(`Expected ${name} to be a positive integer but received '${env[name]}'`);
  return value;
}

function portVar(env: Env, name: string): number | undefined {
  const value = nonNegativeIntegerVar(env, name);
  if (value !== undefined && (value < 1 || value > 65535)) {
    throw new Error(`Expected ${name} to be a port between 1 and 65535 but received '${env[name]}'`);
  }
  return value;
}

function below(name: string, value: number, limitName: string, limit: number): void {
  if (value >= limit) throw new Error(`Expected ${name} in [0, ${limitName}=${limit}) but received ${value}`);
}

/**
 * This process's place in a distributed run, or null when it is not part of one.
 *
 * - torchrun, our launcher and Kubeflow's PyTorchJob set RANK and WORLD_SIZE (and MASTER_ADDR,
 *   MASTER_PORT); LOCAL_RANK and LOCAL_WORLD_SIZE default to 0 and 1 (PyTorchJob sets neither: one
 *   process per pod); the node rank is GROUP_RANK, else rank ÷ local world size.
 * - Slurm, when RANK is absent: a task that srun started (SLURM_STEP_ID set; an sbatch script itself
 *   also has SLURM_PROCID=0 and SLURM_NTASKS but is no task of a step) with more than one task. A
 *   one-task step is an ordinary run, so `srun finetorch train` on one GPU needs no rendezvous port.
 *
 * Throws, saying what was expected and what came, when the variables contradict each other.
 */
export function readDistributedEnv(env: Env = process.env): DistributedEnv | null {
  if (read(env, 'RANK') !== undefined || read(env, 'WORLD_SIZE') !== undefined) return readTorchrun(env);
  if (read(env, 'SLURM_PROCID') !== undefined && (read(env, 'SLURM_STEP_ID') ?? read(env, 'SLURM_STEPID')) !== undefined) {
    return readSlurm(env);
  }
  return null;
}

function readTorchrun(env: Env): DistributedEnv {
  const rank = nonNegativeIntegerVar(env, 'RANK');
  const worldSize = positiveIntegerVar(env, 'WORLD_SIZE');
  if (worldSize === undefined) throw new Error('RANK is set but WORLD_SIZE is not: set both, as torchrun does');
  if (rank === undefined) throw new Error('WORLD_SIZE is set but RANK is not: set both, as torchrun does');
  below('RANK', rank, 'WORLD_SIZE', worldSize);
  const masterAddr = read(env, 'MASTER_ADDR');
  if (masterAddr === undefined) throw new Error('WORLD_SIZE is set but MASTER_ADDR is not: set MASTER_ADDR and MASTER_PORT as torchrun does');
  const masterPort = portVar(env, 'MASTER_PORT');
  if (masterPort === undefined) throw new Error('WORLD_SIZE is set but MASTER_PORT is not: set MASTER_ADDR and MASTER_PORT as torchrun does');
  const localRank = nonNegativeIntegerVar(env, 'LOCAL_RANK') ?? 0;
  const localWorldSize = positiveIntegerVar(env, 'LOCAL_WORLD_SIZE') ?? 1;
  below('LOCAL_RANK', localRank, 'LOCAL_WORLD_SIZE', localWorldSize);
  if (localWorldSize > worldSize) {
    throw new Error(`Expected LOCAL_WORLD_SIZE at most WORLD_SIZE=${worldSize} but received ${localWorldSize}`);
  }
  const nodeRank = nonNegativeIntegerVar(env, 'GROUP_RANK') ?? Math.floor(rank / localWorldSize);
  return { rank, worldSize, localRank, localWorldSize, nodeRank, masterAddr, masterPort, source: 'torchrun' };
}

function readSlurm(env: Env): DistributedEnv | null {
  const rank = nonNegativeIntegerVar(env, 'SLURM_PROCID')!;
  // the step's figures where srun gave them: a step may use fewer tasks or nodes than the job
  const worldSizeName = read(env, 'SLURM_STEP_NUM_TASKS') !== undefined ? 'SLURM_STEP_NUM_TASKS' : 'SLURM_NTASKS';
  const worldSize = positiveIntegerVar(env, worldSizeName);
  if (worldSize === undefined) throw new Error('SLURM_PROCID is set but SLURM_NTASKS is not: run the workers with srun --ntasks N');
  below('SLURM_PROCID', rank, worldSizeName, worldSize);
  if (worldSize === 1) return null;
  const nodeRank = nonNegativeIntegerVar(env, 'SLURM_NODEID') ?? 0;
  const localRank = nonNegativeIntegerVar(env, 'SLURM_LOCALID') ?? 0;
  const localWorldSize = slurmTasksOnThisNode(env, nodeRank);
  below('SLURM_LOCALID', localRank, 'tasks on this node', localWorldSize);
  const masterAddr = read(env, 'MASTER_ADDR') ?? firstSlurmHost(env);
  const masterPort = portVar(env, 'MASTER_PORT') ?? DEFAULT_MASTER_PORT;
  return { rank, worldSize, localRank, localWorldSize, nodeRank, masterAddr, masterPort, source: 'slurm' };
}

/**
 * Tasks on this node. SLURM_NTASKS_PER_NODE holds what --ntasks-per-node asked for; without it
 * the step's (or job's) per-node list "2(x3),1" is read at this node's index, since the first
 * count is not every node's when the tasks do not divide evenly.
 */
function slurmTasksOnThisNode(env: Env, nodeRank: number): number {
  for (const name of ['SLURM_NTASKS_PER_NODE', 'SLURM_STEP_TASKS_PER_NODE', 'SLURM_TASKS_PER_NODE']) {
    const raw = read(env, name);
    if (raw === undefined) continue;
    const counts = expandTaskCounts(raw, name);
    return counts.length === 1 ? counts[0] : (counts[nodeRank] ?? counts[0]);
  }
  return 1;
}

/** Slurm's per-node count list: "2(x3),1" is [2, 2, 2, 1]. */
export function expandTaskCounts(value: string, name = 'the task count list'): number[] {
  const counts: number[] = [];
  for (const part of value.split(',')) {
    const match = /^\s*(\d+)\s*(?:\(x(\d+)\))?\s*$/.exec(part);
    if (!match || Number(match[1]) === 0 || match[2] === '0') {
      throw new Error(`Expected ${name} like '2' or '2(x3),1' but received '${value}'`);
    }
    for (let i = 0; i < Number(match[2] ?? 1); i++) counts.push(Number(match[1]));
  }
  return counts;
}

function firstSlurmHost(env: Env): string {
  // rank 0 runs on the first node of its step, which need not be the job's first node
  for (const name of ['SLURM_STEP_NODELIST', 'SLURM_JOB_NODELIST', 'SLURM_NODELIST']) {
    const raw = read(env, name);
    if (raw !== undefined) return expandHostlist(raw, name)[0];
  }
  throw new Error('Slurm task without MASTER_ADDR or SLURM_JOB_NODELIST: set MASTER_ADDR to the first node of the job');
}

/**
 * Slurm's compact host list as single names: "node[01-03,07],gpu-a" is node01, node02, node03,
 * node07, gpu-a (zero padding kept; several bracket groups in one name multiply out).
 */
export function expandHostlist(value: string, name = 'the host list'): string[] {
  const fail = (): never => {
    throw new Error(`Expected ${name} like 'node[01-04,07]' or 'a,b' but received '${value}'`);
  };
  const hosts: string[] = [];
  for (const item of splitTopLevel(value.trim(), fail)) {
    if (item === '') fail();
    hosts.push(...expandHost(item, fail));
  }
  return hosts;
}

/** Splits at the commas outside brackets. */
function splitTopLevel(value: string, fail: () => never): string[] {
  const items: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < value.length; i++) {
    if (value[i] === '[') depth++;
    else if (value[i] === ']') depth--;
    if (depth < 0 || depth > 1) fail();
    if (value[i] === ',' && depth === 0) {
      items.push(value.slice(start, i).trim());
      start = i + 1;
    }
  }
  if (depth !== 0) fail();
  items.push(value.slice(start).trim());
  return items;
}

function expandHost(item: string, fail: () => never): string[] {
  const open = item.indexOf('[');
  if (open < 0) return item.includes(']') ? fail() : [item];
  const close = item.indexOf(']', open);
  const prefix = item.slice(0, open);
  const rest = expandHost(item.slice(close + 1), fail);
  const names: string[] = [];
  for (const range of item.slice(open + 1, close).split(',')) {
    const match = /^(\d+)(?:-(\d+))?$/.exec(range.trim());
    if (!match) fail();
    const [, from, to = from] = match!;
    if (Number(to) < Number(from)) fail();
    const width = from.length;
    for (let n = Number(from); n <= Number(to); n++) {
      for (const suffix of rest) names.push(`${prefix}${String(n).padStart(width, '0')}${suffix}`);
    }
  }
  return names;
}

/** Intra-op threads when `localWorldSize` processes share `cores`: each gets its share, at least one. */
export function threadsPerWorker(cores: number, localWorldSize: number): number {
  return Math.max(1, Math.floor(cores / localWorldSize));
}

/**
 * The intra-op thread count a worker should use: OMP_NUM_THREADS when it is a positive integer (the
 * user's or the launcher's choice), else this machine's cores shared among its local workers.
 */
export function workerThreads(env: Env = process.env, cores: number = os.availableParallelism()): number {
  const omp = read(env, 'OMP_NUM_THREADS');
  if (omp !== undefined && /^\d+$/.test(omp) && Number(omp) > 0) return Number(omp);
  return threadsPerWorker(cores, readDistributedEnv(env)?.localWorldSize ?? 1);
}
