// Charts as SVG strings, rasterised to PNG with sharp (whose libvips bundles librsvg, pango and
// fontconfig, so text renders with the system's fonts; DejaVu Sans is the first choice, with
// generic sans-serif behind it).
//
// Every chart has an `...Svg` function returning the SVG text and an async function returning PNG
// bytes. Text measurement is estimated (0.6 em per character), which is close for DejaVu Sans.
// All user-supplied text (titles, class and layer names) is XML-escaped.

import sharp from 'sharp';

import {
  boolean,
  finiteNumber,
  integerInRange,
  invalid,
  knownKeys,
  nonNegativeInteger,
  oneOf,
  plainObject,
} from '../utils/validate';

export const FONT_FAMILY = "'DejaVu Sans', 'Liberation Sans', Arial, Helvetica, sans-serif";

/** Ten line colours (matplotlib's tab10). */
export const LINE_COLOURS = [
  '#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd',
  '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf',
];

/** Twenty colours chosen to be told apart (after Sasha Trubetskoy's list, darkened for white). */
export const CLASS_COLOURS = [
  '#e6194b', '#3cb44b', '#4363d8', '#f58231', '#911eb4', '#42d4f4', '#f032e6', '#9a6324', '#000075',
  '#800000', '#469990', '#808000', '#bfef45', '#ffe119', '#a9a9a9', '#000000', '#fabed4', '#dcbeff',
  '#aaffc3', '#ffd8b1',
];

// ---------------------------------------------------------------------------------------------
// Helpers

export function escapeXml(text: string): string {
  return String(text).replace(/[<>&"']/g, (c) =>
    c === '<' ? '&lt;' : c === '>' ? '&gt;' : c === '&' ? '&amp;' : c === '"' ? '&quot;' : '&#39;',
  );
}

function textWidth(text: string, fontSize: number): number {
  return text.length * fontSize * 0.6;
}

function truncate(text: string, maxChars: number): string {
  return text.length <= maxChars ? text : `${text.slice(0, Math.max(1, maxChars - 1))}…`;
}

function r(v: number): string {
  return String(Math.round(v * 100) / 100);
}

interface TextOptions {
  size?: number;
  anchor?: 'start' | 'middle' | 'end';
  weight?: 'normal' | 'bold';
  fill?: string;
  rotate?: number;
  /** Vertical alignment of y: the baseline, or the middle of the text's x-height. */
  middle?: boolean;
  halo?: boolean;
}

function text(x: number, y: number, content: string, o: TextOptions = {}): string {
  const size = o.size ?? 12;
  const yy = o.middle ? y + size * 0.35 : y;
  const attrs =
    `font-size="${r(size)}" text-anchor="${o.anchor ?? 'start'}"` +
    (o.weight === 'bold' ? ' font-weight="bold"' : '') +
    (o.rotate ? ` transform="rotate(${o.rotate} ${r(x)} ${r(y)})"` : '');
  const body = escapeXml(content);
  // For rotated text, shift along the rotated baseline's normal instead of y.
  const [tx, ty] = o.rotate && o.middle ? rotateOffset(x, y, size * 0.35, o.rotate) : [x, yy];
  const halo = o.halo
    ? `<text x="${r(tx)}" y="${r(ty)}" ${attrs} fill="white" stroke="white" stroke-width="3" stroke-opacity="0.75" stroke-linejoin="round">${body}</text>`
    : '';
  return `${halo}<text x="${r(tx)}" y="${r(ty)}" ${attrs} fill="${o.fill ?? '#222'}">${body}</text>`;
}

function rotateOffset(x: number, y: number, d: number, degrees: number): [number, number] {
  // The offset (0, d) in the text's own frame, expressed in the page frame.
  const a = (degrees * Math.PI) / 180;
  return [x - d * Math.sin(a), y + d * Math.cos(a)];
}

function svgDocument(width: number, height: number, body: string): string {
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
    `font-family="${escapeXml(FONT_FAMILY)}">\n<rect width="100%" height="100%" fill="white"/>\n${body}\n</svg>\n`
  );
}

/** PNG bytes of an SVG document. */
export async function rasterise(svg: string): Promise<Buffer> {
  if (typeof svg !== 'string' || !svg.includes('<svg')) throw invalid('an SVG document string', 'svg', svg);
  return sharp(Buffer.from(svg, 'utf8'), { limitInputPixels: 20000 * 20000 }).png().toBuffer();
}

/** "Nice" tick values (1, 2, 5 × 10^k steps) covering [min, max] with about `count` ticks. */
export function niceTicks(min: number, max: number, count = 6): { ticks: number[]; step: number } {
  if (!(max > min)) {
    const pad = min === 0 ? 1 : Math.abs(min) * 0.1;
    return niceTicks(min - pad, max + pad, count);
  }
  const raw = (max - min) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  const step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  const first = Math.floor(min / step + 1e-9) * step;
  const last = Math.ceil(max / step - 1e-9) * step;
  const ticks: number[] = [];
  for (let v = first; v <= last + step * 1e-9; v += step) ticks.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return { ticks, step };
}

/** Formats a tick value with as many decimals as the tick step needs. */
export function formatTick(v: number, step: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(Math.max(0, Math.min(3, -Math.floor(Math.log10(step / a)) - 1))).replace('e+', 'e');
  const decimals = Math.max(0, Math.min(10, -Math.floor(Math.log10(step) + 1e-9)));
  return v.toFixed(decimals);
}

function logTicks(min: number, max: number): number[] {
  const lo = Math.floor(Math.log10(min) + 1e-9);
  const hi = Math.ceil(Math.log10(max) - 1e-9);
  const ticks: number[] = [];
  const span = hi - lo;
  const stride = Math.max(1, Math.ceil(span / 8));
  for (let e = lo; e <= hi; e += stride) {
    ticks.push(10 ** e);
    if (span <= 2) for (const m of [2, 5]) if (e < hi) ticks.push(m * 10 ** e);
  }
  return ticks.sort((a, b) => a - b);
}

function formatLog(v: number): string {
  const e = Math.log10(v);
  if (Number.isInteger(Math.round(e * 1e6) / 1e6) && (e < -3 || e > 4)) return `1e${Math.round(e)}`;
  if (v >= 1e-3 && v < 1e5) return String(Number(v.toPrecision(3)));
  return v.toExponential(0).replace('e+', 'e');
}

type Rgb = [number, number, number];

function hex(c: string): Rgb {
  return [parseInt(c.slice(1, 3), 16), parseInt(c.slice(3, 5), 16), parseInt(c.slice(5, 7), 16)];
}

function rampOf(stops: string[]): (t: number) => string {
  const rgb = stops.map(hex);
  return (t: number) => {
    const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (rgb.length - 1);
    const i = Math.min(rgb.length - 2, Math.floor(x));
    const f = x - i;
    const c = rgb[i].map((a, k) => Math.round(a + (rgb[i + 1][k] - a) * f));
    return `#${c.map((v) => v.toString(16).padStart(2, '0')).join('')}`;
  };
}

/** matplotlib's viridis (dark purple → yellow), sampled at nine points. */
export const viridis = rampOf([
  '#440154', '#472c7a', '#3b528b', '#2c728e', '#21918c', '#28ae80', '#5ec962', '#addc30', '#fde725',
]);

/** Reversed magma (pale yellow → black), for counts where 0 is drawn white. */
export const magmaReversed = rampOf([
  '#fcfdbf', '#fec287', '#fb8761', '#e55064', '#b5367a', '#812581', '#4f127b', '#1c1044', '#000004',
]);

function isDark(colour: string): boolean {
  const [red, green, blue] = hex(colour);
  return 0.299 * red + 0.587 * green + 0.114 * blue < 128;
}

function checkSize(name: string, value: unknown, fallback: number): number {
  return value === undefined ? fallback : integerInRange(name, value, 50, 20000);
}

function optionalString(name: string, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw invalid('string', name, value);
  return value;
}

function checkClassNames(name: string, value: unknown, n: number): string[] {
  if (!Array.isArray(value) || value.length !== n || value.some((v) => typeof v !== 'string')) {
    throw invalid(`an array of ${n} strings`, name, value);
  }
  return value;
}

function colourBar(
  x: number,
  y: number,
  width: number,
  height: number,
  colour: (t: number) => string,
  ticks: Array<{ t: number; label: string }>,
  label?: string,
): string {
  const parts: string[] = [];
  const steps = 64;
  for (let i = 0; i < steps; i++) {
    const t0 = i / steps;
    parts.push(
      `<rect x="${r(x)}" y="${r(y + height * (1 - (i + 1) / steps))}" width="${r(width)}" height="${r(height / steps + 0.5)}" fill="${colour(t0 + 0.5 / steps)}"/>`,
    );
  }
  parts.push(`<rect x="${r(x)}" y="${r(y)}" width="${r(width)}" height="${r(height)}" fill="none" stroke="#444"/>`);
  for (const { t, label: tickLabel } of ticks) {
    const ty = y + height * (1 - t);
    parts.push(`<line x1="${r(x + width)}" x2="${r(x + width + 4)}" y1="${r(ty)}" y2="${r(ty)}" stroke="#444"/>`);
    parts.push(text(x + width + 7, ty, tickLabel, { size: 11, middle: true }));
  }
  if (label) parts.push(text(x, y - 10, label, { size: 11 }));
  return parts.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Line chart

export interface LineSeries {
  name: string;
  points: ReadonlyArray<readonly [number, number]>;
  dashed?: boolean;
  colour?: string;
}

export interface LineChartOptions {
  title?: string;
  xLabel?: string;
  yLabel?: string;
  series: LineSeries[];
  width?: number;
  height?: number;
  yScale?: 'linear' | 'log';
  xMin?: number;
  xMax?: number;
  yMin?: number;
  yMax?: number;
  /** Dots on the points; by default when no series has more than 40 points. */
  markers?: boolean;
  /** Vertical rules, e.g. where the backbone was unfrozen. */
  verticalLines?: Array<{ x: number; label?: string }>;
}

const LINE_KEYS = [
  'title', 'xLabel', 'yLabel', 'series', 'width', 'height', 'yScale', 'xMin', 'xMax', 'yMin', 'yMax',
  'markers', 'verticalLines',
] as const;

/**
 * Curves such as loss or accuracy per epoch, train vs val, phases laid end to end, a from-scratch
 * run overlaid dashed. Non-finite points (a NaN loss) break the line rather than end the chart.
 */
export function lineChartSvg(options: LineChartOptions): string {
  plainObject('options', options);
  knownKeys('lineChart options', options as unknown as Record<string, unknown>, LINE_KEYS);
  const width = checkSize('width', options.width, 900);
  const height = checkSize('height', options.height, 560);
  const title = optionalString('title', options.title);
  const xLabel = optionalString('xLabel', options.xLabel);
  const yLabel = optionalString('yLabel', options.yLabel);
  const logY = oneOf('yScale', options.yScale ?? 'linear', ['linear', 'log'] as const) === 'log';
  if (!Array.isArray(options.series)) throw invalid('an array of series', 'series', options.series);
  const series = options.series.map((s, i) => {
    plainObject(`series[${i}]`, s);
    if (typeof s.name !== 'string') throw invalid('string', `series[${i}].name`, s.name);
    if (!Array.isArray(s.points)) throw invalid('an array of [x, y] points', `series[${i}].points`, s.points);
    s.points.forEach((p, j) => {
      if (!Array.isArray(p) || p.length !== 2 || typeof p[0] !== 'number' || typeof p[1] !== 'number') {
        throw invalid('[x, y] pair of numbers', `series[${i}].points[${j}]`, p);
      }
    });
    return { ...s, colour: s.colour ?? LINE_COLOURS[i % LINE_COLOURS.length] };
  });
  const usable = (p: readonly [number, number]) =>
    Number.isFinite(p[0]) && Number.isFinite(p[1]) && (!logY || p[1] > 0);

  // Data ranges
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (const s of series) {
    for (const p of s.points) {
      if (!usable(p)) continue;
      x0 = Math.min(x0, p[0]); x1 = Math.max(x1, p[0]);
      y0 = Math.min(y0, p[1]); y1 = Math.max(y1, p[1]);
    }
  }
  if (!Number.isFinite(x0)) { x0 = 0; x1 = 1; y0 = logY ? 0.1 : 0; y1 = 1; }
  if (options.xMin !== undefined) x0 = finiteNumber('xMin', options.xMin);
  if (options.xMax !== undefined) x1 = finiteNumber('xMax', options.xMax);
  if (options.yMin !== undefined) y0 = finiteNumber('yMin', options.yMin);
  if (options.yMax !== undefined) y1 = finiteNumber('yMax', options.yMax);
  if (logY && !(y0 > 0)) throw invalid('positive number (log scale)', 'yMin', y0);

  const xt = niceTicks(x0, x1, Math.max(2, Math.floor(width / 110)));
  if (options.xMin === undefined) x0 = Math.min(x0, xt.ticks[0]);
  if (options.xMax === undefined) x1 = Math.max(x1, xt.ticks[xt.ticks.length - 1]);
  if (x1 <= x0) x1 = x0 + 1;
  let yTicks: number[];
  let yLabels: string[];
  if (logY) {
    if (y1 <= y0) { y0 /= 2; y1 *= 2; }
    if (options.yMin === undefined) y0 = 10 ** Math.floor(Math.log10(y0) + 1e-9);
    if (options.yMax === undefined) y1 = 10 ** Math.ceil(Math.log10(y1) - 1e-9);
    if (y1 <= y0) y1 = y0 * 10;
    yTicks = logTicks(y0, y1).filter((t) => t >= y0 * (1 - 1e-9) && t <= y1 * (1 + 1e-9));
    yLabels = yTicks.map(formatLog);
  } else {
    const yt = niceTicks(y0, y1, Math.max(2, Math.floor(height / 70)));
    if (options.yMin === undefined) y0 = Math.min(y0, yt.ticks[0]);
    if (options.yMax === undefined) y1 = Math.max(y1, yt.ticks[yt.ticks.length - 1]);
    if (y1 <= y0) y1 = y0 + 1;
    yTicks = yt.ticks.filter((t) => t >= y0 - yt.step * 1e-6 && t <= y1 + yt.step * 1e-6);
    yLabels = yTicks.map((t) => formatTick(t, yt.step));
  }
  const xTicks = xt.ticks.filter((t) => t >= x0 - xt.step * 1e-6 && t <= x1 + xt.step * 1e-6);

  // Layout
  const legendFont = 13;
  const legendNames = series.map((s) => truncate(s.name, 40));
  const legendWidth = series.length ? Math.max(...legendNames.map((n) => textWidth(n, legendFont))) + 50 : 0;
  const tickLabelWidth = Math.max(...yLabels.map((l) => textWidth(l, 11)), 10);
  const left = 20 + (yLabel ? 22 : 0) + tickLabelWidth;
  const top = title ? 46 : 18;
  const right = 20 + legendWidth;
  const bottom = 40 + (xLabel ? 22 : 0);
  const pw = Math.max(40, width - left - right);
  const ph = Math.max(40, height - top - bottom);
  const sx = (x: number) => left + ((x - x0) / (x1 - x0)) * pw;
  const ly0 = Math.log10(y0), ly1 = Math.log10(y1);
  const sy = logY
    ? (y: number) => top + ph - ((Math.log10(y) - ly0) / (ly1 - ly0)) * ph
    : (y: number) => top + ph - ((y - y0) / (y1 - y0)) * ph;

  const parts: string[] = [];
  parts.push(`<defs><clipPath id="plot"><rect x="${r(left)}" y="${r(top)}" width="${r(pw)}" height="${r(ph)}"/></clipPath></defs>`);
  if (title) parts.push(text(width / 2, 28, title, { size: 18, anchor: 'middle', weight: 'bold' }));
  // Grid and ticks
  yTicks.forEach((t, i) => {
    const y = sy(t);
    parts.push(`<line x1="${r(left)}" x2="${r(left + pw)}" y1="${r(y)}" y2="${r(y)}" stroke="#e4e4e4"/>`);
    parts.push(`<line x1="${r(left - 5)}" x2="${r(left)}" y1="${r(y)}" y2="${r(y)}" stroke="#444"/>`);
    parts.push(text(left - 8, y, yLabels[i], { size: 11, anchor: 'end', middle: true }));
  });
  for (const t of xTicks) {
    const x = sx(t);
    parts.push(`<line x1="${r(x)}" x2="${r(x)}" y1="${r(top)}" y2="${r(top + ph)}" stroke="#e4e4e4"/>`);
    parts.push(`<line x1="${r(x)}" x2="${r(x)}" y1="${r(top + ph)}" y2="${r(top + ph + 5)}" stroke="#444"/>`);
    parts.push(text(x, top + ph + 19, formatTick(t, xt.step), { size: 11, anchor: 'middle' }));
  }
  parts.push(`<rect x="${r(left)}" y="${r(top)}" width="${r(pw)}" height="${r(ph)}" fill="none" stroke="#444"/>`);
  if (xLabel) parts.push(text(left + pw / 2, top + ph + 46, xLabel, { size: 13, anchor: 'middle' }));
  if (yLabel) parts.push(text(18, top + ph / 2, yLabel, { size: 13, anchor: 'middle', rotate: -90, middle: true }));
  for (const v of options.verticalLines ?? []) {
    const x = sx(finiteNumber('verticalLines[].x', v.x));
    parts.push(`<line x1="${r(x)}" x2="${r(x)}" y1="${r(top)}" y2="${r(top + ph)}" stroke="#888" stroke-dasharray="2 3" clip-path="url(#plot)"/>`);
    if (v.label) parts.push(text(x + 4, top + 14, String(v.label), { size: 11, fill: '#555' }));
  }
  // Series
  const markers = options.markers ?? series.every((s) => s.points.length <= 40);
  boolean('markers', markers);
  series.forEach((s) => {
    const dash = s.dashed ? ' stroke-dasharray="7 4"' : '';
    let run: string[] = [];
    const flush = () => {
      if (run.length > 1) {
        parts.push(`<polyline points="${run.join(' ')}" fill="none" stroke="${s.colour}" stroke-width="2"${dash} stroke-linejoin="round" clip-path="url(#plot)"/>`);
      }
      run = [];
    };
    for (const p of s.points) {
      if (!usable(p)) { flush(); continue; }
      const x = sx(p[0]), y = sy(p[1]);
      run.push(`${r(x)},${r(y)}`);
      if (markers) parts.push(`<circle cx="${r(x)}" cy="${r(y)}" r="3" fill="${s.colour}" clip-path="url(#plot)"/>`);
    }
    flush();
  });
  // Legend, outside the plot on the right
  series.forEach((s, i) => {
    const lx = left + pw + 18;
    const ly = top + 10 + i * 22;
    const dash = s.dashed ? ' stroke-dasharray="7 4"' : '';
    parts.push(`<line x1="${r(lx)}" x2="${r(lx + 26)}" y1="${r(ly)}" y2="${r(ly)}" stroke="${s.colour}" stroke-width="2.5"${dash}/>`);
    parts.push(text(lx + 32, ly, legendNames[i], { size: legendFont, middle: true }));
  });
  return svgDocument(width, height, parts.join('\n'));
}

export async function lineChart(options: LineChartOptions): Promise<Buffer> {
  return rasterise(lineChartSvg(options));
}

// ---------------------------------------------------------------------------------------------
// Confusion matrix

export interface ConfusionMatrixOptions {
  /** matrix[true][predicted] = count. */
  matrix: number[][];
  classNames: string[];
  title?: string;
  /** Divide each row by its sum (recall per true class); default true. */
  normalize?: boolean;
  /** Colour by the square root of the value, making small confusions stand out; default false. */
  sqrtScale?: boolean;
  /** Side of one cell in pixels; by default the largest that keeps the picture within maxSize. */
  cellSize?: number;
  /** Largest width/height in pixels when cellSize is computed; default 2400. */
  maxSize?: number;
}

function checkMatrix(matrix: unknown): number[][] {
  if (!Array.isArray(matrix) || matrix.length === 0) throw invalid('a non-empty square array of rows', 'matrix', matrix);
  const n = matrix.length;
  matrix.forEach((row, i) => {
    if (!Array.isArray(row) || row.length !== n) throw invalid(`an array of ${n} numbers`, `matrix[${i}]`, row);
    row.forEach((v, j) => {
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw invalid('non-negative finite number', `matrix[${i}][${j}]`, v);
    });
  });
  return matrix as number[][];
}

/** Row-normalised copy (rows summing to 0 stay 0). */
export function normalizeRows(matrix: number[][]): number[][] {
  return matrix.map((row) => {
    const sum = row.reduce((a, b) => a + b, 0);
    return row.map((v) => (sum > 0 ? v / sum : 0));
  });
}

const CONFUSION_KEYS = ['matrix', 'classNames', 'title', 'normalize', 'sqrtScale', 'cellSize', 'maxSize'] as const;

/**
 * Confusion matrix, rows = true class, columns = predicted. Sized for 101 classes: cells shrink to
 * fit `maxSize`, labels shrink with them (column labels rotated), values printed in cells when they
 * are large enough to hold them. Zero cells are white.
 */
export function confusionMatrixSvg(options: ConfusionMatrixOptions): string {
  plainObject('options', options);
  knownKeys('confusionMatrixChart options', options as unknown as Record<string, unknown>, CONFUSION_KEYS);
  const matrix = checkMatrix(options.matrix);
  const n = matrix.length;
  const names = checkClassNames('classNames', options.classNames, n);
  const title = optionalString('title', options.title);
  const normalize = boolean('normalize', options.normalize ?? true);
  const sqrtScale = boolean('sqrtScale', options.sqrtScale ?? false);
  const maxSize = checkSize('maxSize', options.maxSize, 2400);

  const values = normalize ? normalizeRows(matrix) : matrix;
  let vmax = 0;
  for (const row of values) for (const v of row) vmax = Math.max(vmax, v);
  if (normalize) vmax = 1;
  if (vmax === 0) vmax = 1;

  const maxChars = 28;
  const longest = Math.max(...names.map((s) => Math.min(s.length, maxChars)), 1);
  // Cell size and label size depend on each other through the margins; two rounds settle it.
  let cell = options.cellSize === undefined ? 40 : integerInRange('cellSize', options.cellSize, 1, 400);
  let labelFont = 12;
  let labelSpace = 0;
  const colourBarSpace = 120;
  for (let round = 0; round < 3; round++) {
    labelFont = Math.min(13, Math.max(5, cell * 0.72));
    labelSpace = longest * labelFont * 0.6 + 10;
    if (options.cellSize !== undefined) break;
    const available = maxSize - (labelSpace + 40) - Math.max(colourBarSpace, 0) - 20;
    cell = Math.max(2, Math.min(48, Math.floor(available / n)));
  }
  const showLabels = cell >= 5; // smaller cells cannot carry legible names
  const top = title ? 56 : 20;
  const left = 40 + (showLabels ? labelSpace : 0);
  const plot = n * cell;
  const width = Math.ceil(left + plot + colourBarSpace);
  const height = Math.ceil(top + plot + (showLabels ? labelSpace : 0) + 44);

  const colour = (v: number) => magmaReversed(sqrtScale ? Math.sqrt(v / vmax) : v / vmax);
  const annotate = cell >= 26;
  const parts: string[] = [];
  if (title) parts.push(text(width / 2, 32, title, { size: 20, anchor: 'middle', weight: 'bold' }));
  parts.push(`<rect x="${left}" y="${top}" width="${plot}" height="${plot}" fill="white" stroke="none"/>`);
  // Cells (zeros left white: a 101×101 matrix is mostly zeros)
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const v = values[i][j];
      if (v <= 0) continue;
      const c = colour(v);
      parts.push(`<rect x="${left + j * cell}" y="${top + i * cell}" width="${cell}" height="${cell}" fill="${c}"/>`);
      if (annotate) {
        const label = normalize ? `${Math.round(v * 100)}` : formatCount(v);
        parts.push(text(left + (j + 0.5) * cell, top + (i + 0.5) * cell, label, {
          size: Math.min(12, cell * 0.4), anchor: 'middle', middle: true, fill: isDark(c) ? 'white' : '#222',
        }));
      }
    }
  }
  // Faint grid where it helps, the diagonal outlined, a frame
  if (cell >= 8) {
    const lines: string[] = [];
    for (let k = 1; k < n; k++) {
      lines.push(`M${left + k * cell} ${top}v${plot}M${left} ${top + k * cell}h${plot}`);
    }
    parts.push(`<path d="${lines.join('')}" stroke="#eee" stroke-width="0.5" fill="none"/>`);
  }
  parts.push(`<rect x="${left}" y="${top}" width="${plot}" height="${plot}" fill="none" stroke="#444"/>`);
  // Labels
  if (showLabels) {
    for (let i = 0; i < n; i++) {
      const name = truncate(names[i], maxChars);
      parts.push(text(left - 5, top + (i + 0.5) * cell, name, { size: labelFont, anchor: 'end', middle: true }));
      parts.push(text(left + (i + 0.5) * cell, top + plot + 5, name, { size: labelFont, anchor: 'end', rotate: -90, middle: true }));
    }
  }
  parts.push(text(left + plot / 2, height - 14, 'Predicted class', { size: 14, anchor: 'middle', weight: 'bold' }));
  parts.push(text(16, top + plot / 2, 'True class', { size: 14, anchor: 'middle', weight: 'bold', rotate: -90, middle: true }));
  // Colour bar
  const barHeight = Math.min(plot, 400);
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((t) => {
    const v = sqrtScale ? t * t * vmax : t * vmax;
    return { t, label: normalize ? `${Math.round(v * 100)}%` : formatCount(v) };
  });
  parts.push(colourBar(left + plot + 24, top + 20, 18, barHeight, (t) => magmaReversed(t), ticks, normalize ? 'share of row' : 'count'));
  return svgDocument(width, height, parts.join('\n'));
}

function formatCount(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toPrecision(3);
}

export async function confusionMatrixChart(options: ConfusionMatrixOptions): Promise<Buffer> {
  return rasterise(confusionMatrixSvg(options));
}

export interface Confusion {
  trueIndex: number;
  predictedIndex: number;
  trueClass: string;
  predictedClass: string;
  /** Images of trueClass predicted as predictedClass. */
  count: number;
  /** count / images of trueClass. */
  rate: number;
}

/**
 * The k largest off-diagonal cells: which classes are taken for which. Ordered by count, then
 * rate, then index; zero cells are never listed (so fewer than k may come back).
 */
export function worstConfusions(matrix: number[][], classNames: string[], k = 10, by: 'count' | 'rate' = 'count'): Confusion[] {
  checkMatrix(matrix);
  const names = checkClassNames('classNames', classNames, matrix.length);
  nonNegativeInteger('k', k);
  oneOf('by', by, ['count', 'rate'] as const);
  const out: Confusion[] = [];
  matrix.forEach((row, i) => {
    const sum = row.reduce((a, b) => a + b, 0);
    row.forEach((count, j) => {
      if (i === j || count <= 0) return;
      out.push({ trueIndex: i, predictedIndex: j, trueClass: names[i], predictedClass: names[j], count, rate: count / sum });
    });
  });
  const key = (c: Confusion) => (by === 'count' ? [c.count, c.rate] : [c.rate, c.count]);
  out.sort((a, b) => {
    const [a1, a2] = key(a);
    const [b1, b2] = key(b);
    return b1 - a1 || b2 - a2 || a.trueIndex - b.trueIndex || a.predictedIndex - b.predictedIndex;
  });
  return out.slice(0, k);
}

export interface BarChartOptions {
  title?: string;
  bars: Array<{ label: string; value: number; note?: string; colour?: string }>;
  xLabel?: string;
  width?: number;
  /** Height of one bar's row; the picture's height follows from the number of bars. */
  barHeight?: number;
}

/** Horizontal bars, largest first as given, labels on the left, values at the bar ends. */
export function barChartSvg(options: BarChartOptions): string {
  plainObject('options', options);
  knownKeys('barChart options', options as unknown as Record<string, unknown>, ['title', 'bars', 'xLabel', 'width', 'barHeight']);
  const title = optionalString('title', options.title);
  const xLabel = optionalString('xLabel', options.xLabel);
  const width = checkSize('width', options.width, 800);
  const rowHeight = options.barHeight === undefined ? 24 : integerInRange('barHeight', options.barHeight, 4, 200);
  if (!Array.isArray(options.bars)) throw invalid('an array of bars', 'bars', options.bars);
  const bars = options.bars.map((b, i) => {
    plainObject(`bars[${i}]`, b);
    if (typeof b.label !== 'string') throw invalid('string', `bars[${i}].label`, b.label);
    finiteNumber(`bars[${i}].value`, b.value);
    return { ...b, label: truncate(b.label, 60) };
  });
  const font = Math.min(13, Math.max(8, rowHeight * 0.55));
  const labelWidth = Math.max(40, ...bars.map((b) => textWidth(b.label, font))) + 12;
  const noteWidth = Math.max(40, ...bars.map((b) => textWidth(b.note ?? formatCount(b.value), 11))) + 14;
  const top = title ? 48 : 14;
  const left = labelWidth + 10;
  const pw = Math.max(60, width - left - noteWidth - 10);
  const height = Math.ceil(top + Math.max(1, bars.length) * rowHeight + (xLabel ? 44 : 16));
  const vmax = Math.max(0, ...bars.map((b) => b.value)) || 1;
  const parts: string[] = [];
  if (title) parts.push(text(width / 2, 30, title, { size: 17, anchor: 'middle', weight: 'bold' }));
  bars.forEach((b, i) => {
    const y = top + i * rowHeight;
    const w = (Math.max(0, b.value) / vmax) * pw;
    parts.push(text(left - 8, y + rowHeight / 2, b.label, { size: font, anchor: 'end', middle: true }));
    parts.push(`<rect x="${r(left)}" y="${r(y + rowHeight * 0.15)}" width="${r(w)}" height="${r(rowHeight * 0.7)}" fill="${b.colour ?? LINE_COLOURS[0]}"/>`);
    parts.push(text(left + w + 6, y + rowHeight / 2, b.note ?? formatCount(b.value), { size: 11, middle: true, fill: '#444' }));
  });
  parts.push(`<line x1="${left}" x2="${left}" y1="${top}" y2="${top + bars.length * rowHeight}" stroke="#444"/>`);
  if (xLabel) parts.push(text(left + pw / 2, height - 14, xLabel, { size: 12, anchor: 'middle' }));
  return svgDocument(width, height, parts.join('\n'));
}

export async function barChart(options: BarChartOptions): Promise<Buffer> {
  return rasterise(barChartSvg(options));
}

/** Bar chart of worstConfusions' pairs: "true → predicted", count and rate. */
export function worstConfusionsSvg(pairs: Confusion[], options: { title?: string; width?: number } = {}): string {
  if (!Array.isArray(pairs)) throw invalid('an array from worstConfusions', 'pairs', pairs);
  return barChartSvg({
    title: options.title ?? 'Most frequent confusions',
    width: options.width,
    xLabel: 'validation images (true → predicted)',
    bars: pairs.map((p) => ({
      label: `${p.trueClass} → ${p.predictedClass}`,
      value: p.count,
      note: `${formatCount(p.count)} (${(p.rate * 100).toFixed(0)}%)`,
      colour: '#d62728',
    })),
  });
}

export async function worstConfusionsChart(pairs: Confusion[], options: { title?: string; width?: number } = {}): Promise<Buffer> {
  return rasterise(worstConfusionsSvg(pairs, options));
}

// ---------------------------------------------------------------------------------------------
// Gradient norms

export interface GradientNormOptions {
  steps: ArrayLike<number>;
  /** Norm per step for each layer, in the order to draw (network order reads best). */
  layers: Record<string, ArrayLike<number>>;
  title?: string;
  /** 'heatmap': one row per layer, colour = log10(norm); 'lines': log-scale curves. Default:
   *  lines for up to 10 layers, else heatmap. */
  mode?: 'heatmap' | 'lines';
  width?: number;
  height?: number;
}

/** Gradient norms per layer over training, log scale. Zero or non-finite norms show grey. */
export function gradientNormSvg(options: GradientNormOptions): string {
  plainObject('options', options);
  knownKeys('gradientNormChart options', options as unknown as Record<string, unknown>, ['steps', 'layers', 'title', 'mode', 'width', 'height']);
  const steps = options.steps;
  if (typeof steps !== 'object' || steps === null || typeof steps.length !== 'number') throw invalid('an array of step numbers', 'steps', steps);
  const layers = plainObject('layers', options.layers) as Record<string, ArrayLike<number>>;
  const names = Object.keys(layers);
  for (const name of names) {
    const v = layers[name];
    if (typeof v !== 'object' || v === null || v.length !== steps.length) {
      throw invalid(`an array of ${steps.length} numbers (one per step)`, `layers['${name}']`, v);
    }
  }
  const title = optionalString('title', options.title) ?? 'Gradient norm per layer';
  const mode = oneOf('mode', options.mode ?? (names.length <= 10 ? 'lines' : 'heatmap'), ['heatmap', 'lines'] as const);
  if (mode === 'lines') {
    return lineChartSvg({
      title,
      xLabel: 'step',
      yLabel: 'gradient L2 norm',
      yScale: 'log',
      width: options.width,
      height: options.height,
      markers: false,
      series: names.map((name) => ({
        name,
        points: Array.from({ length: steps.length }, (_, i) => [steps[i], layers[name][i]] as [number, number]),
      })),
    });
  }
  const width = checkSize('width', options.width, 1100);
  const rowHeight = Math.max(4, Math.min(22, Math.floor(1400 / Math.max(1, names.length))));
  const labelFont = Math.min(12, Math.max(6, rowHeight * 0.75));
  const labelStride = labelFont * 1.1 > rowHeight ? Math.ceil((labelFont * 1.1) / rowHeight) : 1;
  const labelChars = 40;
  const labelWidth = Math.max(...names.map((s) => textWidth(truncate(s, labelChars), labelFont)), 20) + 12;
  const top = 50;
  const left = labelWidth + 10;
  const plotH = names.length * rowHeight;
  const height = options.height === undefined ? top + plotH + 60 : checkSize('height', options.height, 0);
  const pw = Math.max(50, width - left - 110);
  // Columns: one per step, or bins of steps (geometric mean) when there are more steps than pixels.
  const nSteps = steps.length;
  const nCols = Math.max(1, Math.min(nSteps, Math.floor(pw / 2)));
  let lo = Infinity, hi = -Infinity;
  const cells: number[][] = names.map((name) => {
    const v = layers[name];
    const row: number[] = [];
    for (let c = 0; c < nCols; c++) {
      const a = Math.floor((c * nSteps) / nCols), b = Math.max(a + 1, Math.floor(((c + 1) * nSteps) / nCols));
      let s = 0, k = 0;
      for (let i = a; i < b; i++) {
        const x = v[i];
        if (Number.isFinite(x) && x > 0) { s += Math.log10(x); k++; }
      }
      const m = k ? s / k : NaN;
      if (k) { lo = Math.min(lo, m); hi = Math.max(hi, m); }
      row.push(m);
    }
    return row;
  });
  if (!Number.isFinite(lo)) { lo = -1; hi = 0; }
  if (hi - lo < 1e-9) { lo -= 0.5; hi += 0.5; }
  const colW = pw / nCols;
  const parts: string[] = [];
  parts.push(text(width / 2, 30, title, { size: 18, anchor: 'middle', weight: 'bold' }));
  cells.forEach((row, li) => {
    const y = top + li * rowHeight;
    row.forEach((m, c) => {
      const fill = Number.isFinite(m) ? viridis((m - lo) / (hi - lo)) : '#bbbbbb';
      parts.push(`<rect x="${r(left + c * colW)}" y="${y}" width="${r(colW + 0.6)}" height="${rowHeight}" fill="${fill}"/>`);
    });
    if (li % labelStride === 0) {
      parts.push(text(left - 6, y + rowHeight / 2, truncate(names[li], labelChars), { size: labelFont, anchor: 'end', middle: true }));
    }
  });
  parts.push(`<rect x="${left}" y="${top}" width="${r(pw)}" height="${plotH}" fill="none" stroke="#444"/>`);
  // Step axis
  let s0 = Infinity, s1 = -Infinity;
  for (let i = 0; i < nSteps; i++) { s0 = Math.min(s0, steps[i]); s1 = Math.max(s1, steps[i]); }
  if (nSteps > 0) {
    const xt = niceTicks(s0, s1, Math.max(2, Math.floor(pw / 110)));
    for (const t of xt.ticks) {
      if (t < s0 || t > s1) continue;
      const x = left + (s1 > s0 ? ((t - s0) / (s1 - s0)) * (pw - colW) + colW / 2 : pw / 2);
      parts.push(`<line x1="${r(x)}" x2="${r(x)}" y1="${top + plotH}" y2="${top + plotH + 5}" stroke="#444"/>`);
      parts.push(text(x, top + plotH + 18, formatTick(t, xt.step), { size: 11, anchor: 'middle' }));
    }
  }
  parts.push(text(left + pw / 2, top + plotH + 42, 'step', { size: 13, anchor: 'middle' }));
  // Colour bar in powers of ten
  const barH = Math.min(plotH, 300);
  const ticks: Array<{ t: number; label: string }> = [];
  // Whole powers of ten when the range spans two or more; otherwise nice steps in log10.
  const wholeStride = Math.max(1, Math.ceil((hi - lo) / 6));
  let exponents: number[] = [];
  for (let e = Math.ceil(lo - 1e-9); e <= hi + 1e-9; e += wholeStride) exponents.push(e);
  if (exponents.length < 2) exponents = niceTicks(lo, hi, 5).ticks.filter((e) => e >= lo - 1e-9 && e <= hi + 1e-9);
  for (const e of exponents) ticks.push({ t: (e - lo) / (hi - lo), label: formatLog(10 ** e) });
  parts.push(colourBar(left + pw + 20, top + 16, 16, barH, viridis, ticks, 'L2 norm'));
  return svgDocument(width, Math.max(height, top + plotH + 50), parts.join('\n'));
}

export async function gradientNormChart(options: GradientNormOptions): Promise<Buffer> {
  return rasterise(gradientNormSvg(options));
}

// ---------------------------------------------------------------------------------------------
// Scatter (t-SNE)

export interface ScatterOptions {
  /** [x, y] pairs, or a flat Float64Array of n×2 (what tsne returns). */
  points: ReadonlyArray<readonly [number, number]> | Float64Array | Float32Array;
  /** Class index of each point. */
  labels: ArrayLike<number>;
  classNames: string[];
  title?: string;
  width?: number;
  height?: number;
  pointRadius?: number;
  /** Write each class's name at its median point; default when there are more than 20 classes. */
  labelClusters?: boolean;
}

/**
 * Points coloured by class, equal aspect (t-SNE axes carry no units, so no ticks). Up to 20
 * classes get a legend; beyond that colours repeat (with a different marker shape for each cycle of
 * 20) and class names are written at the clusters instead.
 */
export function scatterSvg(options: ScatterOptions): string {
  plainObject('options', options);
  knownKeys('scatterChart options', options as unknown as Record<string, unknown>, ['points', 'labels', 'classNames', 'title', 'width', 'height', 'pointRadius', 'labelClusters']);
  const { points, labels } = options;
  let xs: Float64Array, ys: Float64Array;
  if (points instanceof Float64Array || points instanceof Float32Array) {
    if (points.length % 2 !== 0) throw invalid('a flat array of n×2 coordinates', 'points', points);
    const n = points.length / 2;
    xs = new Float64Array(n); ys = new Float64Array(n);
    for (let i = 0; i < n; i++) { xs[i] = points[2 * i]; ys[i] = points[2 * i + 1]; }
  } else if (Array.isArray(points)) {
    xs = new Float64Array(points.length); ys = new Float64Array(points.length);
    points.forEach((p, i) => {
      if (!Array.isArray(p) || p.length !== 2) throw invalid('[x, y] pair', `points[${i}]`, p);
      xs[i] = finiteNumber(`points[${i}][0]`, p[0]); ys[i] = finiteNumber(`points[${i}][1]`, p[1]);
    });
  } else throw invalid('an array of [x, y] points or a Float64Array', 'points', points);
  const n = xs.length;
  if (typeof labels !== 'object' || labels === null || labels.length !== n) throw invalid(`an array of ${n} class indices`, 'labels', labels);
  if (!Array.isArray(options.classNames)) throw invalid('an array of strings', 'classNames', options.classNames);
  const names = checkClassNames('classNames', options.classNames, options.classNames.length);
  const nClasses = names.length;
  for (let i = 0; i < n; i++) integerInRange(`labels[${i}]`, labels[i], 0, Math.max(0, nClasses - 1));
  const title = optionalString('title', options.title);
  const width = checkSize('width', options.width, nClasses <= 20 ? 1000 : 900);
  const height = checkSize('height', options.height, 820);
  const radius = options.pointRadius === undefined ? (n > 3000 ? 2 : n > 800 ? 3 : 4) : finiteNumber('pointRadius', options.pointRadius);
  const legend = nClasses <= 20;
  const labelClusters = boolean('labelClusters', options.labelClusters ?? !legend);

  const legendWidth = legend ? Math.max(...names.map((s) => textWidth(truncate(s, 30), 12)), 20) + 44 : 0;
  const top = title ? 46 : 14;
  const pw = width - 28 - legendWidth;
  const ph = height - top - 14;
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(xs[i]) || !Number.isFinite(ys[i])) continue;
    x0 = Math.min(x0, xs[i]); x1 = Math.max(x1, xs[i]); y0 = Math.min(y0, ys[i]); y1 = Math.max(y1, ys[i]);
  }
  if (!Number.isFinite(x0)) { x0 = y0 = -1; x1 = y1 = 1; }
  const span = Math.max(x1 - x0, y1 - y0, 1e-12) * 1.06;
  const scale = Math.min(pw, ph) / span;
  const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
  const ox = 14 + pw / 2, oy = top + ph / 2;
  const px = (x: number) => ox + (x - cx) * scale;
  const py = (y: number) => oy - (y - cy) * scale; // y up

  const parts: string[] = [];
  if (title) parts.push(text(width / 2, 30, title, { size: 18, anchor: 'middle', weight: 'bold' }));
  parts.push(`<rect x="${r(ox - (span * scale) / 2)}" y="${r(oy - (span * scale) / 2)}" width="${r(span * scale)}" height="${r(span * scale)}" fill="none" stroke="#ccc"/>`);
  const marker = (x: number, y: number, cls: number, rad: number) => {
    const fill = CLASS_COLOURS[cls % CLASS_COLOURS.length];
    const shape = Math.floor(cls / CLASS_COLOURS.length) % 3;
    const style = `fill="${fill}" fill-opacity="0.85" stroke="#333" stroke-width="0.4"`;
    if (shape === 0) return `<circle cx="${r(x)}" cy="${r(y)}" r="${r(rad)}" ${style}/>`;
    if (shape === 1) return `<rect x="${r(x - rad)}" y="${r(y - rad)}" width="${r(2 * rad)}" height="${r(2 * rad)}" ${style}/>`;
    const h = rad * 1.25;
    return `<polygon points="${r(x)},${r(y - h)} ${r(x + h)},${r(y + h * 0.8)} ${r(x - h)},${r(y + h * 0.8)}" ${style}/>`;
  };
  // Interleave classes (a fixed stride through the points) so no class is always painted last.
  const stride = n > 1 ? strideCoprime(n) : 1;
  for (let k = 0, i = 0; k < n; k++, i = (i + stride) % n) {
    if (Number.isFinite(xs[i]) && Number.isFinite(ys[i])) parts.push(marker(px(xs[i]), py(ys[i]), labels[i], radius));
  }
  if (labelClusters) {
    for (let c = 0; c < nClasses; c++) {
      const mx: number[] = [], my: number[] = [];
      for (let i = 0; i < n; i++) if (labels[i] === c && Number.isFinite(xs[i])) { mx.push(xs[i]); my.push(ys[i]); }
      if (!mx.length) continue;
      // Above the cluster's median point, so the name does not hide the points at its centre.
      parts.push(text(px(median(mx)), py(median(my)) - radius - 5, truncate(names[c], 24), { size: 10, anchor: 'middle', halo: true }));
    }
  }
  if (legend) {
    names.forEach((name, c) => {
      const lx = 14 + pw + 22, ly = top + 12 + c * 20;
      parts.push(marker(lx, ly, c, 5));
      parts.push(text(lx + 12, ly, truncate(name, 30), { size: 12, middle: true }));
    });
  }
  return svgDocument(width, height, parts.join('\n'));
}

function strideCoprime(n: number): number {
  const gcd = (a: number, b: number): number => (b ? gcd(b, a % b) : a);
  let s = Math.max(1, Math.round(n * 0.618));
  while (gcd(s, n) !== 1) s++;
  return s;
}

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export async function scatterChart(options: ScatterOptions): Promise<Buffer> {
  return rasterise(scatterSvg(options));
}
