// A distributed run's process group on libtorch's c10d: rank 0 hosts the TCPStore rendezvous, the
// collectives run on Gloo (CPU and CUDA tensors) or NCCL, and gradients are averaged by DDP's own
// Reducer during backward. Collectives queue on the compute thread with the train steps.
import { native, type NativeGradientSync, type NativeProcessGroup } from '../../binding';
import { Model } from '../models/model';
import { Tensor } from '../tensor';
import { integerInRange, invalid, knownKeys, nonEmptyString, numberInRange, oneOf, plainObject, positiveInteger } from '../utils/validate';
import type { DistributedEnv } from './env';

export interface ProcessGroupOptions {
  rank: number;
  worldSize: number;
  /** This process's index on its machine (its GPU is cuda:localRank); default 0. */
  localRank?: number;
  /** Processes on this machine (threads and GPUs are divided among them); default 1. */
  localWorldSize?: number;
  /** Where rank 0 listens; default 127.0.0.1:29500. */
  masterAddr?: string;
  masterPort?: number;
  /** Joining, and any collective, fail after this many seconds (default 60: PyTorch's 30 min is too long to wait on a laptop). */
  timeoutSeconds?: number;
  /** 'gloo' (CPU and CUDA tensors) or 'nccl' (CUDA, where the libtorch has it); default 'gloo'. */
  backend?: 'gloo' | 'nccl';
}

export interface GradientSyncOptions {
  /** DDP's bucket_cap_mb (default 25). */
  bucketCapMb?: number;
  /** All-reduce flat buckets after backward instead of DDP's Reducer overlapping it (for measuring the overlap). */
  flatBuckets?: boolean;
}

/** Averages a model's gradients across the ranks; pass it to trainStep as `gradientSync`. */
export class GradientSync {
  constructor(
    readonly native: NativeGradientSync,
    /** The model whose parameters it averages: trainStep refuses it for any other model. */
    readonly model: Model,
  ) {}
  /** 'reducer' (DDP's Reducer) or 'flat-buckets'. */
  get mode(): string {
    return this.native.mode;
  }
  dispose(): void {
    this.native.dispose();
  }
}

/** What this build of the addon can do. */
export function distributedSupport(): { c10d: boolean; backends: string[]; gradientSync: string | null } {
  return native().distributedSupport();
}

export class ProcessGroup {
  readonly localRank: number;
  readonly localWorldSize: number;
  readonly timeoutSeconds: number;

  private constructor(
    private readonly group: NativeProcessGroup,
    options: Required<ProcessGroupOptions>,
  ) {
    this.localRank = options.localRank;
    this.localWorldSize = options.localWorldSize;
    this.timeoutSeconds = options.timeoutSeconds;
  }

  /** Joins the run: returns when every rank has joined, rejects after the timeout naming who did not. */
  static async init(options: ProcessGroupOptions): Promise<ProcessGroup> {
    knownKeys('process group options', plainObject('process group options', options), ['rank', 'worldSize', 'localRank', 'localWorldSize', 'masterAddr', 'masterPort', 'timeoutSeconds', 'backend']);
    const worldSize = positiveInteger('worldSize', options.worldSize);
    const localWorldSize = positiveInteger('localWorldSize', options.localWorldSize ?? 1);
    const full: Required<ProcessGroupOptions> = {
      rank: integerInRange('rank', options.rank, 0, worldSize - 1),
      worldSize,
      localRank: integerInRange('localRank', options.localRank ?? 0, 0, localWorldSize - 1),
      localWorldSize,
      masterAddr: nonEmptyString('masterAddr', options.masterAddr ?? '127.0.0.1'),
      masterPort: integerInRange('masterPort', options.masterPort ?? 29500, 1, 65535),
      timeoutSeconds: numberInRange('timeoutSeconds', options.timeoutSeconds ?? 60, 0.1, 86400),
      backend: oneOf('backend', options.backend ?? 'gloo', ['gloo', 'nccl'] as const),
    };
    const support = distributedSupport();
    // (a build without c10d: the native call below explains, with what to install)
    if (support.c10d && !support.backends.includes(full.backend)) {
      throw new Error(`this libtorch has no ${full.backend.toUpperCase()} (backends here: ${support.backends.join(', ')}): use backend gloo`);
    }
    const group = await native().initProcessGroup({
      rank: full.rank, worldSize: full.worldSize, localRank: full.localRank, masterAddr: full.masterAddr, masterPort: full.masterPort,
      timeoutMs: Math.round(full.timeoutSeconds * 1000), backend: full.backend,
    });
    return new ProcessGroup(group, full);
  }

  /** The group a torchrun/Slurm/launcher worker belongs to (see readDistributedEnv). */
  static fromEnv(env: DistributedEnv, options: { timeoutSeconds?: number; backend?: 'gloo' | 'nccl' } = {}): Promise<ProcessGroup> {
    return ProcessGroup.init({
      rank: env.rank, worldSize: env.worldSize, localRank: env.localRank, localWorldSize: env.localWorldSize,
      masterAddr: env.masterAddr, masterPort: env.masterPort, ...options,
    });
  }

  get rank(): number {
    return this.group.rank;
  }
  get size(): number {
    return this.group.size;
  }
  get backend(): string {
    return this.group.backend;
  }
  get disposed(): boolean {
    return this.group.disposed;
  }

  /** In place on every rank: the sum (or elementwise maximum) over the ranks. */
  allReduce(tensor: Tensor, op: 'sum' | 'max' = 'sum'): Promise<void> {
    if (!(tensor instanceof Tensor)) throw invalid('Tensor', 'tensor', tensor);
    return this.group.allReduce(tensor.native, oneOf('op', op, ['sum', 'max'] as const));
  }

  /** In place: rank `root`'s values on every rank. */
  broadcast(tensor: Tensor, root = 0): Promise<void> {
    if (!(tensor instanceof Tensor)) throw invalid('Tensor', 'tensor', tensor);
    return this.group.broadcast(tensor.native, integerInRange('root', root, 0, this.size - 1));
  }

  /** Every rank's tensor (one shape on all ranks), concatenated along dim 0 in rank order. */
  async allGather(tensor: Tensor): Promise<Tensor> {
    if (!(tensor instanceof Tensor)) throw invalid('Tensor', 'tensor', tensor);
    return new Tensor(await this.group.allGather(tensor.native));
  }

  barrier(): Promise<void> {
    return this.group.barrier();
  }

  /** Rank `root`'s `value` on every rank (through the store): run names, anything small. */
  shareString(key: string, value: string, root = 0): Promise<string> {
    return this.group.shareString(nonEmptyString('key', key), String(value), integerInRange('root', root, 0, this.size - 1));
  }

  /** Checks that every rank built the same model, then gives every rank rank 0's weights and buffers. */
  broadcastModel(model: Model): Promise<void> {
    if (!(model instanceof Model)) throw invalid('Model', 'model', model);
    return this.group.broadcastModel(model.native);
  }

  /** DDP over the parameters that require grad now (make a new one after freezing or unfreezing). */
  async gradientSync(model: Model, options: GradientSyncOptions = {}): Promise<GradientSync> {
    if (!(model instanceof Model)) throw invalid('Model', 'model', model);
    knownKeys('gradientSync options', plainObject('options', options), ['bucketCapMb', 'flatBuckets']);
    const sync = await this.group.gradientSync(model.native, {
      bucketCapMb: numberInRange('bucketCapMb', options.bucketCapMb ?? 25, 0.001, 4096),
      flatBuckets: options.flatBuckets === true,
    });
    return new GradientSync(sync, model);
  }

  /**
   * Turns a failed collective into an error that names the lost rank(s), read from the heartbeats
   * each rank keeps in the store. Afterwards the group is abandoned (never waited on again).
   */
  async explainFailure(error: unknown): Promise<Error> {
    const reason = error instanceof Error ? error.message : String(error);
    let lost: { storeLost: boolean; ranks: number[] } | undefined;
    try {
      lost = await this.group.lostRanks(1500);
    } catch {
      lost = undefined;
    }
    const me = `rank ${this.rank} of ${this.size}`;
    this.abandon();
    if (lost?.storeLost) return new DistributedFailure(`${me}: lost rank 0 (its rendezvous store stopped answering): ${reason}`, [0]);
    if (lost && lost.ranks.length > 0) {
      return new DistributedFailure(`${me}: lost rank${lost.ranks.length > 1 ? 's' : ''} ${lost.ranks.join(', ')} (no heartbeat): ${reason}`, lost.ranks);
    }
    return new DistributedFailure(`${me}: ${reason}`, []);
  }

  /** Leaves the group without waiting on its peers again (after a failure). */
  abandon(): void {
    if (!this.group.disposed) this.group.abandon();
  }

  dispose(): void {
    if (!this.group.disposed) this.group.dispose();
  }
}

/** A distributed run stopped because a collective failed; `lostRanks` are the ranks that went away. */
export class DistributedFailure extends Error {
  override name = 'DistributedFailure';
  constructor(
    message: string,
    readonly lostRanks: number[],
  ) {
    super(message);
  }
}
