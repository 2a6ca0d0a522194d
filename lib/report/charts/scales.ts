// Axis scales and colours: nice linear ticks, log ticks, tick and count formatting, the line and
// class palettes, the viridis/magma colour ramps and the colour bar drawn beside heatmaps.

import { r, text } from './svg';

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

/** Powers of ten covering [min, max] (with 2× and 5× between them when the span is short). */
export function logTicks(min: number, max: number): number[] {
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

/** A log-axis tick label: `1e-5`, `0.02`, `500`. */
export function formatLog(v: number): string {
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

/** Whether white text reads better than dark text on this colour. */
export function isDark(colour: string): boolean {
  const [red, green, blue] = hex(colour);
  return 0.299 * red + 0.587 * green + 0.114 * blue < 128;
}

/** A count as an integer, or to three significant digits when it is not one. */
export function formatCount(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toPrecision(3);
}

/** A vertical colour bar with ticks on its right and an optional label above. */
export function colourBar(
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
