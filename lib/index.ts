// finetorch: fine-tune torchvision CNNs from TypeScript over libtorch.
export { Tensor, tensor, randn, matmul, cat, indexSelect, validateDevice, DTYPES } from './tensor';
export type { DType, TensorOptions } from './tensor';
export {
  runtimeInfo, setNumThreads, getNumThreads, manualSeed, getRngState, setRngState, resolveDevice, setCudnnBenchmark,
  setAllowTF32, allowTF32, cpuCacheInfo, emptyCpuCache,
} from './runtime';
export type { RuntimeInfo, TF32Flags, CpuCacheInfo } from './runtime';
export * from './models';
export * from './training';
export * from './data';
export * from './experiment';
export * from './download';
export { createPredictionServer, runInfo } from './serve';
export type { PredictionServer, ServeOptions, RunInfo } from './serve';
export { runDoctor, gatherFacts, diagnose, formatFindings } from './doctor';
export type { DoctorReport, DoctorFacts, Finding, FindingStatus } from './doctor';
export * from './export';
export * from './distributed';
export {
  EventWriter, MetricsLog, readMetrics, metricSeries, lineChart, confusionMatrixChart, worstConfusions, gradientNormChart,
  scatterChart, barChart, tsne, nearestNeighbourPurity, trustworthiness, renderReport, writeReport,
} from './report';
export type { MetricsRecord, EpochMetrics, GradNormRecord, TsneOptions, ReportOptions } from './report';
