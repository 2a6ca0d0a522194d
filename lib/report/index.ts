// Seeing the results: TensorBoard event files, a JSONL metrics log, charts (SVG → PNG with sharp),
// t-SNE, and a self-contained HTML report. Plain TypeScript over plain data; no native code.
export { crc32c, maskedCrc32c } from './crc32c';
export { EventWriter, histogramFromValues, frameRecord, FILE_VERSION } from './tensorboard';
export type { Histogram } from './tensorboard';
export { MetricsLog, readMetrics, metricSeries, SPLITS } from './metrics-log';
export type {
  Split,
  EpochMetrics,
  GradNormRecord,
  MetricsRecord,
  EpochMetricsInput,
  GradNormInput,
  MetricName,
} from './metrics-log';
export {
  lineChart,
  lineChartSvg,
  confusionMatrixChart,
  confusionMatrixSvg,
  normalizeRows,
  worstConfusions,
  worstConfusionsChart,
  worstConfusionsSvg,
  barChart,
  barChartSvg,
  gradientNormChart,
  gradientNormSvg,
  scatterChart,
  scatterSvg,
  rasterise,
  escapeXml,
  CLASS_COLOURS,
  LINE_COLOURS,
} from './charts';
export type {
  LineChartOptions,
  LineSeries,
  ConfusionMatrixOptions,
  Confusion,
  BarChartOptions,
  GradientNormOptions,
  ScatterOptions,
} from './charts';
export { tsne, nearestNeighbourPurity, trustworthiness, MAX_TSNE_POINTS } from './tsne';
export type { TsneOptions } from './tsne';
export { renderReport, writeReport, dataUri } from './html';
export { escapeHtml } from '../utils/escape';
export { formatDurationLong } from '../utils/format';
export type { ReportOptions, ComparisonRow, ReportImage, ClassAccuracy, MisclassifiedSample } from './html';
