// Confusion matrix chart, row normalisation, and worstConfusions (the largest off-diagonal cells).

import { boolean, integerInRange, invalid, knownKeys, nonNegativeInteger, oneOf, plainObject } from '../../utils/validate';
import { checkClassNames, checkSize, optionalString } from './checks';
import { colourBar, formatCount, isDark, magmaReversed } from './scales';
import { rasterise, svgDocument, text, truncate } from './svg';

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
