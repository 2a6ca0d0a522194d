// Scatter plot of points coloured by class (t-SNE embeddings): legend or names at the clusters.

import { boolean, finiteNumber, integerInRange, invalid, knownKeys, plainObject } from '../../utils/validate';
import { checkClassNames, checkSize, optionalString } from './checks';
import { CLASS_COLOURS } from './scales';
import { r, rasterise, svgDocument, text, textWidth, truncate } from './svg';

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
