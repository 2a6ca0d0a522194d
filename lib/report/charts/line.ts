// Line chart: curves such as loss or accuracy per epoch, linear or log y axis, legend on the right.

import { boolean, finiteNumber, invalid, knownKeys, oneOf, plainObject } from '../../utils/validate';
import { checkSize, optionalString } from './checks';
import { formatLog, formatTick, LINE_COLOURS, logTicks, niceTicks } from './scales';
import { r, rasterise, svgDocument, text, textWidth, truncate } from './svg';

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
