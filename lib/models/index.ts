export { Model, createModel, ARCHITECTURES, HEADS } from './model';
export type { Architecture, HeadKind, ModelOptions, StateDict, LoadResult, FreezeOptions } from './model';
