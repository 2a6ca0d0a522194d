// Horizontal bar chart, and its use for worstConfusions' pairs ("true → predicted").

import { finiteNumber, integerInRange, invalid, knownKeys, plainObject } from '../../utils/validate';
import { checkSize, optionalString } from './checks';
import type { Confusion } from './confusion';
import { formatCount, LINE_COLOURS } from './scales';
import { r, rasterise, svgDocument, text, textWidth, truncate } from './svg';

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
