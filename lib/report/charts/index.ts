// Charts as SVG strings, rasterised to PNG with sharp (whose libvips bundles librsvg, pango and
// fontconfig, so text renders with the system's fonts; DejaVu Sans is the first choice, with
// generic sans-serif behind it).
//
// Every chart has an `...Svg` function returning the SVG text and an async function returning PNG
// bytes. Text measurement is estimated (0.6 em per character), which is close for DejaVu Sans.
// All user-supplied text (titles, class and layer names) is XML-escaped.

export { escapeXml } from '../../utils/escape';
export { FONT_FAMILY, rasterise } from './svg';
export { CLASS_COLOURS, LINE_COLOURS, formatTick, magmaReversed, niceTicks, viridis } from './scales';
export { lineChart, lineChartSvg } from './line';
export type { LineChartOptions, LineSeries } from './line';
export { confusionMatrixChart, confusionMatrixSvg, normalizeRows, worstConfusions } from './confusion';
export type { Confusion, ConfusionMatrixOptions } from './confusion';
export { barChart, barChartSvg, worstConfusionsChart, worstConfusionsSvg } from './bars';
export type { BarChartOptions } from './bars';
export { gradientNormChart, gradientNormSvg } from './gradient-norms';
export type { GradientNormOptions } from './gradient-norms';
export { scatterChart, scatterSvg } from './scatter';
export type { ScatterOptions } from './scatter';
