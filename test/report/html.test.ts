import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';

import { confusionMatrixChart, lineChart } from '../../lib/report/charts';
import { renderReport, ReportOptions, sniffImageType, writeReport } from '../../lib/report/html';
import { formatDurationLong } from '../../lib/utils/format';
import { assertPresent, prerequisite } from '../helpers/prerequisite';

const CHROMIUM = '/usr/bin/chromium';

// Set FINETORCH_REPORT_ARTIFACTS to a directory to keep the report and its screenshot.
const keep = process.env.FINETORCH_REPORT_ARTIFACTS;
let dir: string;

beforeAll(() => {
  dir = keep ?? fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-report-'));
  fs.mkdirSync(dir, { recursive: true });
});
afterAll(() => {
  if (!keep) fs.rmSync(dir, { recursive: true, force: true });
});

async function fixture(): Promise<ReportOptions> {
  const epochs = Array.from({ length: 10 }, (_, i) => i + 1);
  fs.writeFileSync(
    path.join(dir, 'accuracy.png'),
    await lineChart({
      title: 'Top-1 accuracy',
      xLabel: 'epoch',
      yLabel: 'accuracy',
      width: 900,
      height: 450,
      series: [
        { name: 'train (fine-tune)', points: epochs.map((e) => [e, 1 - 0.6 / e]) },
        { name: 'val (fine-tune)', points: epochs.map((e) => [e, 0.92 - 0.5 / e]) },
        { name: 'val (scratch)', points: epochs.map((e) => [e, 0.6 - 0.4 / e]), dashed: true },
      ],
    }),
  );
  const names = ['accordion', 'airplanes', 'anchor', 'ant', 'barrel', 'bass'];
  const matrix = names.map((_, i) => names.map((__, j) => (i === j ? 20 - i : (i + j) % 4 === 0 ? 2 : 0)));
  fs.writeFileSync(path.join(dir, 'confusion.png'), await confusionMatrixChart({ matrix, classNames: names, title: 'Confusion' }));
  const colours = ['#c0392b', '#2980b9', '#27ae60', '#8e44ad'];
  for (let i = 0; i < colours.length; i++) {
    // Caltech keeps one JPEG without an extension: the type comes from the bytes.
    const file = path.join(dir, i === 3 ? 'tmp' : `sample${i}.jpg`);
    await sharp({ create: { width: 160 + 20 * i, height: 120, channels: 3, background: colours[i] } }).jpeg().toFile(file);
  }
  return {
    title: 'AlexNet vs ResNet-18 on Caltech-101 <seed 0> & friends',
    config: { model: 'resnet18', seed: 0, optimizer: { type: 'sgd', lr: 0.01, momentum: 0.9 }, note: '</pre><script>alert(1)</script>' },
    comparison: [
      { method: 'ResNet-18 fine-tuned', top1: 0.9312, top5: 0.9871, meanPerClassAccuracy: 0.9105, epochs: 12, wallTimeSeconds: 1834 },
      { method: 'AlexNet fine-tuned', top1: 0.8745, top5: 0.9602, meanPerClassAccuracy: 0.8521, epochs: 12, wallTimeSeconds: 951.2 },
      { method: 'ResNet-18 from scratch <b>', top1: 0.5503, meanPerClassAccuracy: 0.4802, epochs: 30, wallTimeSeconds: 42.5, note: 'no pretraining' },
    ],
    images: [
      { caption: 'Accuracy per epoch: fine-tuning vs scratch', file: path.join(dir, 'accuracy.png') },
      { caption: 'Confusion matrix <val>', file: path.join(dir, 'confusion.png') },
    ],
    perClassAccuracy: [
      { className: 'airplanes', accuracy: 0.99, count: 160 },
      { className: 'ant', accuracy: 0.41, count: 8 },
      { className: 'bass & <pike>', accuracy: 0.55, count: 11 },
      { className: 'accordion', accuracy: 1, count: 11 },
    ],
    misclassified: [
      { file: path.join(dir, 'sample0.jpg'), trueClass: 'ant', predictedClass: 'bass', confidence: 0.81 },
      { file: path.join(dir, 'sample1.jpg'), trueClass: 'anchor', predictedClass: 'ant <x>', confidence: 0.64 },
      { file: path.join(dir, 'sample2.jpg'), trueClass: 'barrel', predictedClass: 'bass', confidence: 0.52 },
      { file: path.join(dir, 'tmp'), trueClass: 'BACKGROUND_Google', predictedClass: 'airplanes', confidence: 0.47 },
    ],
    notes: ['Seed 0, 30 images per class for training.', 'Line one\nline two <i>not italic</i>'],
    generatedAt: new Date(Date.UTC(2025, 0, 2, 3, 4, 5)),
  };
}

describe('renderReport', () => {
  let html: string;
  let options: ReportOptions;
  beforeAll(async () => {
    options = await fixture();
    html = renderReport(options);
  });

  test('escapes every piece of user text', () => {
    expect(html).toContain('<title>AlexNet vs ResNet-18 on Caltech-101 &lt;seed 0&gt; &amp; friends</title>');
    expect(html).not.toContain('<script>');
    expect(html).toContain('&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(html).toContain('ResNet-18 from scratch &lt;b&gt;');
    expect(html).toContain('bass &amp; &lt;pike&gt;');
    expect(html).toContain('ant &lt;x&gt;');
    expect(html).toContain('Confusion matrix &lt;val&gt;');
    expect(html).toContain('Line one<br>line two &lt;i&gt;not italic&lt;/i&gt;');
    expect(html).toContain('2025-01-02 03:04:05 UTC');
  });

  test('the comparison table: methods, percentages, best values marked, durations', () => {
    const table = html.slice(html.indexOf('<table class="comparison">'), html.indexOf('</table>'));
    expect(table).toContain('<th class="num">Top-1</th>');
    expect(table).toContain('Mean per-class accuracy');
    expect(table).toContain('<td class="num best">93.1%</td>');
    expect(table).toContain('<td class="num best">98.7%</td>');
    expect(table).toContain('<td class="num">87.5%</td>');
    expect(table).toContain('<td class="num">—</td>'); // missing top-5
    expect(table).toContain('30 min 34 s');
    expect(table).toContain('15 min 51 s');
    expect(table).toContain('42.5 s');
    expect(table).toContain('no pretraining');
    expect((table.match(/<tr>/g) ?? []).length).toBe(4);
  });

  test('images embedded as data: URIs holding the files, typed by content', () => {
    const uris = [...html.matchAll(/src="data:([^;]+);base64,([^"]+)"/g)];
    expect(uris).toHaveLength(6);
    expect(uris.map((u) => u[1])).toEqual(['image/png', 'image/png', 'image/jpeg', 'image/jpeg', 'image/jpeg', 'image/jpeg']);
    expect(Buffer.from(uris[0][2], 'base64').equals(fs.readFileSync(options.images[0].file))).toBe(true);
    expect(Buffer.from(uris[5][2], 'base64').equals(fs.readFileSync(path.join(dir, 'tmp')))).toBe(true);
    // Nothing fetched from elsewhere.
    expect(html).not.toMatch(/(src|href)="(https?:|file:|\/\/)/);
    expect(html).not.toContain('<link');
  });

  test('per-class accuracy sorted ascending; misclassified thumbnails with captions', () => {
    const order = ['ant', 'bass &amp; &lt;pike&gt;', 'airplanes', 'accordion'].map((n) => html.indexOf(`<td>${n}</td>`));
    expect(order.every((p) => p > 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(html).toContain('mean per-class accuracy 73.8%');
    expect(html).toContain('true: <b>BACKGROUND_Google</b>');
    expect(html).toContain('predicted: airplanes</span> (47.0%)');
    expect((html.match(/class="thumb"/g) ?? []).length).toBe(4);
  });

  test('optional sections may be left out', () => {
    const minimal = renderReport({ title: 't', config: {}, images: [], perClassAccuracy: [] });
    expect(minimal).toContain('<h2>Configuration</h2>');
    expect(minimal).not.toContain('class="comparison"');
    expect(minimal).not.toContain('Misclassified');
  });

  test('clear errors', () => {
    const base = { title: 't', config: {}, images: [], perClassAccuracy: [] };
    expect(() => renderReport({ ...base, images: [{ caption: 'x', file: path.join(dir, 'missing.png') }] })).toThrow(/Cannot embed image '.*missing\.png'/);
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'hello');
    expect(() => renderReport({ ...base, images: [{ caption: 'x', file: path.join(dir, 'notes.txt') }] })).toThrow(/not a PNG, JPEG/);
    expect(() => renderReport({ ...base, perClassAccuracy: [{ className: 'a', accuracy: 93, count: 1 }] })).toThrow(
      'Expected number between 0 and 1 for perClassAccuracy[0].accuracy but received 93 of type number',
    );
    expect(() => renderReport({ ...base, tilte: 'x' } as never)).toThrow(/did you mean 'title'/);
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    expect(() => renderReport({ ...base, config: circular })).toThrow(/JSON-serialisable/);
  });

  test('helpers', () => {
    expect(formatDurationLong(59.94)).toBe('59.9 s');
    expect(formatDurationLong(3725)).toBe('1 h 02 min');
    expect(sniffImageType(Buffer.from('<?xml version="1.0"?><svg xmlns="x"/>'))).toBe('image/svg+xml');
    expect(sniffImageType(Buffer.from('GIF89a......'))).toBe('image/gif');
    expect(sniffImageType(Buffer.from('hello'))).toBeNull();
  });

  const chromium = prerequisite('Chromium (renders the report)', fs.existsSync(CHROMIUM) ? null : `${CHROMIUM} is absent (apt-get install chromium)`);
  chromium.test('renders in headless Chromium: a full-size, non-blank screenshot', async () => {
    assertPresent(chromium);
    const file = writeReport(path.join(dir, 'report.html'), options);
    const screenshot = path.join(dir, 'report-screenshot.png');
    fs.rmSync(screenshot, { force: true });
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-chromium-'));
    try {
      const result = spawnSync(
        CHROMIUM,
        [
          '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
          '--disable-background-networking', '--disable-component-update', '--disable-sync',
          `--user-data-dir=${profile}`, `--screenshot=${screenshot}`, '--window-size=1280,2000',
          '--hide-scrollbars', `file://${path.resolve(file)}`,
        ],
        { encoding: 'utf8', timeout: 300_000, killSignal: 'SIGKILL' }, // a hang bound: Chromium starts slowly on a loaded machine
      );
      if (result.error) throw new Error(`Chromium failed to run: ${result.error.message}\n${result.stderr}`);
      expect(fs.existsSync(screenshot)).toBe(true);
    } finally {
      fs.rmSync(profile, { recursive: true, force: true });
    }
    const { data, info } = await sharp(screenshot).removeAlpha().greyscale().raw().toBuffer({ resolveWithObject: true });
    expect(info.width).toBe(1280);
    expect(info.height).toBe(2000);
    let sum = 0, sq = 0, dark = 0;
    for (const v of data) { sum += v; sq += v * v; if (v < 100) dark++; }
    const mean = sum / data.length;
    expect(Math.sqrt(sq / data.length - mean * mean)).toBeGreaterThan(15); // not a blank page
    expect(dark / data.length).toBeGreaterThan(0.005); // text and chart ink
    // The heading: dark pixels in the top band where the title sits.
    const top = await sharp(screenshot).extract({ left: 0, top: 0, width: 1280, height: 80 }).greyscale().raw().toBuffer();
    expect(top.some((v) => v < 80)).toBe(true);
  });
});
