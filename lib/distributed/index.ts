export { ProcessGroup, GradientSync, DistributedFailure, distributedSupport } from './process-group';
export type { ProcessGroupOptions, GradientSyncOptions } from './process-group';
export { distributedShard, evaluationShard, wholeEpoch } from './sampler';
export type { Shard } from './sampler';
export { readDistributedEnv, workerThreads, DEFAULT_MASTER_PORT } from './env';
export type { DistributedEnv } from './env';
export { launchWorkers } from './launcher';
export { freePort } from './free-port';
