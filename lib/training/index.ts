export { Optimizer, createOptimizer, OPTIMIZERS } from './optimizer';
export type { OptimizerOptions, OptimizerType, ParamGroupOptions, OptimizerState } from './optimizer';
export { trainStep, evalStep } from './steps';
export type { StepOptions, StepResult, EvalResult, GradStat } from './steps';
export { saveCheckpoint, loadCheckpoint, restoreCheckpoint, writeCheckpoints, getRngState, setRngState } from './checkpoint';
export type { CheckpointState, LoadedCheckpoint } from './checkpoint';
export * from './schedulers';
export { GradScaler } from './grad-scaler';
export type { GradScalerOptions } from './grad-scaler';
