export { Model, createModel, ARCHITECTURES, HEADS } from './model';
export type { Architecture, HeadKind, ModelOptions, StateDict, LoadResult, FreezeOptions } from './model';
export { loadWeights, saveWeights, loadPretrained, loadTorchFile, saveTorchFile, findStateDict } from './weights';
export type { LoadedWeights, WeightFormat, PretrainedLoadResult } from './weights';
export { readSafetensors, writeSafetensors } from './safetensors';
export * as pruning from './pruning';
export type { PruneAmount, LayerSparsity } from './pruning';
export * as shrink from './shrink';
