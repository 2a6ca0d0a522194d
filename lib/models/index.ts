export { Model, createModel, ARCHITECTURES, HEADS } from './model';
export type { Architecture, HeadKind, ModelOptions, StateDict, LoadResult, FreezeOptions } from './model';
export { loadWeights, saveWeights, loadPretrained, loadTorchFile, saveTorchFile, findStateDict } from './weights';
export type { LoadedWeights, WeightFormat, PretrainedLoadResult } from './weights';
export { readSafetensors, writeSafetensors } from './safetensors';
export { QuantizedModel, quantizeModel, QUANTIZABLE_ARCHITECTURES, QUANTIZED_ENGINES, OBSERVERS } from './quantized';
export type { QuantizeOptions, QuantizedEngine, ActivationObserver, QuantizedEvalResult } from './quantized';
