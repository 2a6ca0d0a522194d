// Gradient norms per layer over training: log-scale lines for a few layers, a heatmap for many.

import { invalid, knownKeys, oneOf, plainObject } from '../../utils/validate';
import { checkSize, optionalString } from './checks';
import { lineChartSvg } from './line';
import { colourBar, formatLog, formatTick, niceTicks, viridis } from './scales';
import { r, rasterise, svgDocument, text, textWidth, truncate } from './svg';

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
