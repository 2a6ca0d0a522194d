// The data layer: scanning, splitting, decoding and caching images (pure TypeScript + sharp).

export * from './caltech101';
export * from './splits';
export * from './decode';
export * from './cache';
export { Random, deriveSeed, validateSeed } from './random';
export { sniffImageFormat, IMAGE_FORMATS, type ImageFormat } from './formats';
export { summariseSkipped, defaultWarn, type SkipKind } from './skipped';
export * from './transforms';
export * from './auto-augment';
export * from './loader';
export * from './mix';
export { createSyntheticDataset, SYNTHETIC_CLASS_NAMES } from './synthetic';
export type { SyntheticDatasetOptions, SyntheticDataset, SyntheticExtras } from './synthetic';
