// A one-file HTML report: inline CSS, every picture embedded as a data: URI, so the page can be
// mailed or copied anywhere and still show everything. All text is HTML-escaped.

import * as fs from 'node:fs';
import * as path from 'node:path';

import { escapeHtml } from '../utils/escape';
import { formatDurationLong, pct } from '../utils/format';
import { invalid, knownKeys, nonEmptyString, nonNegativeInteger, numberInRange, plainObject } from '../utils/validate';

export interface ComparisonRow {
  method: string;
  /** Accuracies in [0, 1]. */
  top1: number;
  top5?: number;
  meanPerClassAccuracy?: number;
  epochs?: number;
  wallTimeSeconds?: number;
  note?: string;
  /** Shown under an accuracy (e.g. `± 1.3 · 95% CI 69.0–75.2` over seeds), escaped. */
  spread?: { top1?: string; top5?: string; meanPerClassAccuracy?: string };
}

export interface ReportImage {
  caption: string;
  /** A PNG, JPEG, GIF, WebP, BMP or SVG file. */
  file: string;
}

export interface ClassAccuracy {
  className: string;
  /** In [0, 1]. */
  accuracy: number;
  /** Images of the class in the evaluated split. */
  count: number;
}

export interface MisclassifiedSample {
  file: string;
  trueClass: string;
  predictedClass: string;
  /** Softmax probability of the predicted class, in [0, 1]. */
  confidence: number;
}

export interface ReportOptions {
  title: string;
  /** Shown as JSON (the run's configuration, seed, versions...). */
  config: object;
  comparison?: ComparisonRow[];
  images: ReportImage[];
  perClassAccuracy: ClassAccuracy[];
  misclassified?: MisclassifiedSample[];
  /** Paragraphs of plain text (escaped, not interpreted as HTML). */
  notes?: string | string[];
  /** Timestamp printed in the header; default now. */
  generatedAt?: Date;
}

const REPORT_KEYS = [
  'title', 'config', 'comparison', 'images', 'perClassAccuracy', 'misclassified', 'notes', 'generatedAt',
] as const;

/** The MIME type of an image from its first bytes (file names are not trusted: Caltech has a JPEG called `tmp`). */
export function sniffImageType(bytes: Uint8Array): string | null {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.byteLength, 512));
  if (b.length >= 8 && b.readUInt32BE(0) === 0x89504e47) return 'image/png';
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'image/jpeg';
  if (b.length >= 6 && b.toString('latin1', 0, 4) === 'GIF8') return 'image/gif';
  if (b.length >= 12 && b.toString('latin1', 0, 4) === 'RIFF' && b.toString('latin1', 8, 12) === 'WEBP') return 'image/webp';
  if (b.length >= 2 && b[0] === 0x42 && b[1] === 0x4d) return 'image/bmp';
  const head = b.toString('utf8').trimStart();
  if ((head.startsWith('<?xml') || head.startsWith('<svg')) && head.includes('<svg')) return 'image/svg+xml';
  return null;
}

/** A data: URI holding the file's bytes. */
export function dataUri(file: string): string {
  nonEmptyString('file', file);
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (error) {
    throw new Error(`Cannot embed image '${file}' in the report: ${(error as Error).message}`);
  }
  const type = sniffImageType(bytes);
  if (!type) throw new Error(`Cannot embed '${file}' in the report: not a PNG, JPEG, GIF, WebP, BMP or SVG image`);
  return `data:${type};base64,${bytes.toString('base64')}`;
}

function percent(v: number | undefined): string {
  return v === undefined ? '—' : pct(v);
}

function unit(name: string, v: unknown): number {
  return numberInRange(name, v, 0, 1);
}

function optionalUnit(name: string, v: unknown): number | undefined {
  return v === undefined ? undefined : unit(name, v);
}

function arrayOf<T>(name: string, v: unknown, required: boolean): T[] {
  if (v === undefined && !required) return [];
  if (!Array.isArray(v)) throw invalid('array', name, v);
  return v as T[];
}

function stringField(name: string, v: unknown): string {
  if (typeof v !== 'string') throw invalid('string', name, v);
  return v;
}

function configJson(config: object): string {
  try {
    return JSON.stringify(config, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v), 2) ?? 'null';
  } catch (error) {
    throw new TypeError(`Expected config to be JSON-serialisable but it is not: ${(error as Error).message}`);
  }
}

const CSS = `
:root { --fg: #1d2330; --muted: #5b6475; --line: #d9dee7; --accent: #1f77b4; --bad: #d62728; --bg-soft: #f5f7fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 "DejaVu Sans", "Segoe UI", Helvetica, Arial, sans-serif; color: var(--fg); background: white; }
main { max-width: 1180px; margin: 0 auto; padding: 28px 32px 60px; }
h1 { font-size: 28px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 36px 0 12px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
.meta { color: var(--muted); margin: 0 0 20px; }
nav a { margin-right: 14px; color: var(--accent); text-decoration: none; }
table { border-collapse: collapse; width: 100%; margin: 8px 0; }
th, td { padding: 6px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: middle; }
th { background: var(--bg-soft); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.best { font-weight: 700; color: #0b6b2b; }
.notes p { margin: 6px 0; }
pre { background: var(--bg-soft); border: 1px solid var(--line); padding: 12px; overflow: auto; font-size: 13px; max-height: 420px; }
figure { margin: 18px 0; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: 14px; margin-top: 4px; }
.bar { position: relative; background: var(--bg-soft); height: 14px; width: 220px; border-radius: 2px; }
.bar span { position: absolute; left: 0; top: 0; bottom: 0; background: var(--accent); border-radius: 2px; }
.bar.low span { background: var(--bad); }
.class-table { max-height: 640px; overflow: auto; border: 1px solid var(--line); }
.class-table table { margin: 0; }
.class-table th { position: sticky; top: 0; }
.thumbs { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 14px; }
.thumb { border: 1px solid var(--line); padding: 6px; background: white; }
.thumb img { width: 100%; height: 140px; object-fit: contain; background: var(--bg-soft); display: block; }
.thumb .cap { font-size: 12.5px; margin-top: 4px; line-height: 1.35; word-break: break-word; }
.thumb .pred { color: var(--bad); }
footer { margin-top: 40px; color: var(--muted); font-size: 13px; }
`;

function comparisonTable(rows: ComparisonRow[]): string {
  rows.forEach((row, i) => {
    plainObject(`comparison[${i}]`, row);
    stringField(`comparison[${i}].method`, row.method);
    unit(`comparison[${i}].top1`, row.top1);
    optionalUnit(`comparison[${i}].top5`, row.top5);
    optionalUnit(`comparison[${i}].meanPerClassAccuracy`, row.meanPerClassAccuracy);
    if (row.epochs !== undefined) nonNegativeInteger(`comparison[${i}].epochs`, row.epochs);
    if (row.wallTimeSeconds !== undefined) numberInRange(`comparison[${i}].wallTimeSeconds`, row.wallTimeSeconds, 0, Number.MAX_VALUE);
  });
  const best = (key: 'top1' | 'top5' | 'meanPerClassAccuracy') => {
    const values = rows.map((r) => r[key]).filter((v): v is number => v !== undefined);
    return values.length > 1 ? Math.max(...values) : undefined;
  };
  const bests = { top1: best('top1'), top5: best('top5'), meanPerClassAccuracy: best('meanPerClassAccuracy') };
  const cell = (row: ComparisonRow, key: keyof typeof bests) =>
    `<td class="num${row[key] !== undefined && row[key] === bests[key] ? ' best' : ''}">${percent(row[key])}` +
    (row.spread?.[key] ? `<br><small>${escapeHtml(row.spread[key])}</small>` : '') +
    '</td>';
  const hasNotes = rows.some((r) => r.note);
  const body = rows
    .map(
      (row) =>
        `<tr><td>${escapeHtml(row.method)}</td>${cell(row, 'top1')}${cell(row, 'top5')}${cell(row, 'meanPerClassAccuracy')}` +
        `<td class="num">${row.epochs ?? '—'}</td><td class="num">${formatDurationLong(row.wallTimeSeconds)}</td>` +
        (hasNotes ? `<td>${escapeHtml(row.note ?? '')}</td>` : '') +
        '</tr>',
    )
    .join('\n');
  return (
    '<table class="comparison">\n<thead><tr><th>Method</th><th class="num">Top-1</th><th class="num">Top-5</th>' +
    '<th class="num">Mean per-class accuracy</th><th class="num">Epochs</th><th class="num">Wall time</th>' +
    (hasNotes ? '<th>Notes</th>' : '') +
    `</tr></thead>\n<tbody>\n${body}\n</tbody>\n</table>`
  );
}

function perClassTable(rows: ClassAccuracy[]): string {
  rows.forEach((row, i) => {
    plainObject(`perClassAccuracy[${i}]`, row);
    stringField(`perClassAccuracy[${i}].className`, row.className);
    unit(`perClassAccuracy[${i}].accuracy`, row.accuracy);
    nonNegativeInteger(`perClassAccuracy[${i}].count`, row.count);
  });
  const sorted = [...rows].sort((a, b) => a.accuracy - b.accuracy || a.className.localeCompare(b.className));
  const mean = rows.length ? rows.reduce((s, r) => s + r.accuracy, 0) / rows.length : undefined;
  const body = sorted
    .map((row, i) => {
      const low = mean !== undefined && row.accuracy < mean;
      return (
        `<tr><td class="num">${i + 1}</td><td>${escapeHtml(row.className)}</td><td class="num">${percent(row.accuracy)}</td>` +
        `<td><div class="bar${low ? ' low' : ''}"><span style="width:${(row.accuracy * 100).toFixed(1)}%"></span></div></td>` +
        `<td class="num">${row.count}</td></tr>`
      );
    })
    .join('\n');
  return (
    `<p>${rows.length} classes, lowest accuracy first; mean per-class accuracy ${percent(mean)}` +
    ' (bars in red are below the mean).</p>\n' +
    '<div class="class-table"><table class="per-class">\n<thead><tr><th class="num">#</th><th>Class</th>' +
    '<th class="num">Accuracy</th><th></th><th class="num">Images</th></tr></thead>\n' +
    `<tbody>\n${body}\n</tbody>\n</table></div>`
  );
}

function misclassifiedGrid(samples: MisclassifiedSample[]): string {
  const cells = samples.map((s, i) => {
    plainObject(`misclassified[${i}]`, s);
    stringField(`misclassified[${i}].trueClass`, s.trueClass);
    stringField(`misclassified[${i}].predictedClass`, s.predictedClass);
    unit(`misclassified[${i}].confidence`, s.confidence);
    const alt = `${s.trueClass} predicted as ${s.predictedClass}`;
    return (
      `<div class="thumb"><img src="${dataUri(s.file)}" alt="${escapeHtml(alt)}">` +
      `<div class="cap">true: <b>${escapeHtml(s.trueClass)}</b><br>` +
      `<span class="pred">predicted: ${escapeHtml(s.predictedClass)}</span> (${percent(s.confidence)})<br>` +
      `<span title="${escapeHtml(s.file)}">${escapeHtml(path.basename(s.file))}</span></div></div>`
    );
  });
  return `<div class="thumbs">\n${cells.join('\n')}\n</div>`;
}

/** The report as one self-contained HTML document. Reads the image files synchronously. */
export function renderReport(options: ReportOptions): string {
  plainObject('options', options);
  knownKeys('renderReport options', options as unknown as Record<string, unknown>, REPORT_KEYS);
  const title = nonEmptyString('title', options.title);
  if (typeof options.config !== 'object' || options.config === null) throw invalid('object', 'config', options.config);
  const comparison = arrayOf<ComparisonRow>('comparison', options.comparison, false);
  const images = arrayOf<ReportImage>('images', options.images, true);
  const perClass = arrayOf<ClassAccuracy>('perClassAccuracy', options.perClassAccuracy, true);
  const misclassified = arrayOf<MisclassifiedSample>('misclassified', options.misclassified, false);
  const notes = options.notes === undefined ? [] : typeof options.notes === 'string' ? [options.notes] : arrayOf<string>('notes', options.notes, true);
  notes.forEach((n, i) => stringField(`notes[${i}]`, n));
  const generatedAt = options.generatedAt ?? new Date();
  if (!(generatedAt instanceof Date) || Number.isNaN(generatedAt.getTime())) throw invalid('valid Date', 'generatedAt', generatedAt);

  const sections: Array<{ id: string; heading: string; html: string }> = [];
  if (comparison.length) sections.push({ id: 'results', heading: 'Results', html: comparisonTable(comparison) });
  if (notes.length) {
    sections.push({
      id: 'notes',
      heading: 'Notes',
      html: `<div class="notes">${notes.map((n) => `<p>${escapeHtml(n).replace(/\n/g, '<br>')}</p>`).join('\n')}</div>`,
    });
  }
  if (images.length) {
    const figures = images.map((img, i) => {
      plainObject(`images[${i}]`, img);
      const caption = stringField(`images[${i}].caption`, img.caption);
      return `<figure><img src="${dataUri(img.file)}" alt="${escapeHtml(caption)}"><figcaption>${escapeHtml(caption)}</figcaption></figure>`;
    });
    sections.push({ id: 'figures', heading: 'Figures', html: figures.join('\n') });
  }
  if (perClass.length) sections.push({ id: 'per-class', heading: 'Per-class accuracy', html: perClassTable(perClass) });
  if (misclassified.length) {
    sections.push({ id: 'misclassified', heading: 'Misclassified examples', html: misclassifiedGrid(misclassified) });
  }
  sections.push({ id: 'config', heading: 'Configuration', html: `<pre>${escapeHtml(configJson(options.config))}</pre>` });

  const stamp = generatedAt.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${CSS}</style>
</head>
<body>
<main>
<h1>${escapeHtml(title)}</h1>
<p class="meta">Generated ${escapeHtml(stamp)} by finetorch</p>
<nav>${sections.map((s) => `<a href="#${s.id}">${escapeHtml(s.heading)}</a>`).join('')}</nav>
${sections.map((s) => `<section id="${s.id}">\n<h2>${escapeHtml(s.heading)}</h2>\n${s.html}\n</section>`).join('\n')}
<footer>Self-contained report: images are embedded, the file can be copied on its own.</footer>
</main>
</body>
</html>
`;
}

/** Writes renderReport's output to `file` and returns the path. */
export function writeReport(file: string, options: ReportOptions): string {
  nonEmptyString('file', file);
  const html = renderReport(options);
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  fs.writeFileSync(file, html, 'utf8');
  return file;
}
