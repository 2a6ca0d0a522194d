import sharp from 'sharp';

import {
  confusionMatrixChart,
  confusionMatrixSvg,
  formatTick,
  gradientNormChart,
  gradientNormSvg,
  lineChart,
  lineChartSvg,
  niceTicks,
  scatterChart,
  scatterSvg,
  worstConfusions,
  worstConfusionsChart,
} from '../../lib/report/charts';

async function decode(png: Buffer): Promise<{ width: number; height: number; stdev: number; darkShare: number }> {
  const meta = await sharp(png).metadata();
  expect(meta.format).toBe('png');
  const { data, info } = await sharp(png).removeAlpha().greyscale().raw().toBuffer({ resolveWithObject: true });
  let sum = 0, sq = 0, dark = 0;
  for (const v of data) { sum += v; sq += v * v; if (v < 128) dark++; }
  const mean = sum / data.length;
  return { width: info.width, height: info.height, stdev: Math.sqrt(sq / data.length - mean * mean), darkShare: dark / data.length };
}

/** Share of dark pixels in a region: text there means ink there. */
async function inkIn(png: Buffer, region: { left: number; top: number; width: number; height: number }): Promise<number> {
  const { data } = await sharp(png).extract(region).removeAlpha().greyscale().raw().toBuffer({ resolveWithObject: true });
  let dark = 0;
  for (const v of data) if (v < 160) dark++;
  return dark / data.length;
}

const epochs = Array.from({ length: 12 }, (_, i) => i + 1);

describe('lineChart', () => {
  test('renders curves, legend, axes and text at the requested size', async () => {
    const png = await lineChart({
      title: 'Loss',
      xLabel: 'epoch',
      yLabel: 'loss',
      width: 800,
      height: 500,
      series: [
        { name: 'train', points: epochs.map((e) => [e, 2 / e]) },
        { name: 'val', points: epochs.map((e) => [e, 2.2 / e + 0.1]) },
        { name: 'scratch val', points: epochs.map((e) => [e, e === 4 ? NaN : 4 / Math.sqrt(e)]), dashed: true },
      ],
      verticalLines: [{ x: 4, label: 'unfreeze' }],
    });
    const stats = await decode(png);
    expect(stats).toMatchObject({ width: 800, height: 500 });
    expect(stats.stdev).toBeGreaterThan(10);
    // The title is drawn (fonts resolve): ink in the title band, centred.
    expect(await inkIn(png, { left: 300, top: 8, width: 200, height: 30 })).toBeGreaterThan(0.01);
  });

  test('SVG escapes text, breaks lines at NaN, dashes dashed series', () => {
    const svg = lineChartSvg({
      title: 'a <b> & "c"',
      series: [{ name: '<val>', points: [[1, 1], [2, NaN], [3, 0.5], [4, 0.25]], dashed: true }],
      yScale: 'log',
    });
    expect(svg).toContain('a &lt;b&gt; &amp; &quot;c&quot;');
    expect(svg).toContain('&lt;val&gt;');
    expect(svg).not.toContain('<val>');
    expect(svg.match(/<polyline /g)).toHaveLength(1); // the lone first point is not joined across the NaN
    expect(svg).toContain('stroke-dasharray="7 4"');
  });

  test('log scale: ticks at the powers of ten, equally spaced, and each decade of data the same height', () => {
    // y = 1, 10, 100, 1000: on a log axis the points climb in equal steps; on a linear one the
    // first three would sit almost on the floor
    const svg = lineChartSvg({ series: [{ name: 'v', points: [[1, 1], [2, 10], [3, 100], [4, 1000]] }], yScale: 'log', markers: false });
    // y tick labels: right-aligned text left of the plot, with their heights
    const ticks = [...svg.matchAll(/<text x="[\d.]+" y="([\d.]+)" font-size="11" text-anchor="end"[^>]*>([^<]+)<\/text>/g)].map((m) => ({
      label: m[2],
      y: Number(m[1]),
    }));
    expect(ticks.map((t) => t.label)).toEqual(['1', '10', '100', '1000']);
    const gaps = (ys: number[]) => ys.slice(1).map((y, i) => ys[i] - y);
    const tickGaps = gaps(ticks.map((t) => t.y));
    for (const g of tickGaps) expect(g).toBeCloseTo(tickGaps[0], 1);
    expect(tickGaps[0]).toBeGreaterThan(50);
    const [points] = [...svg.matchAll(/<polyline points="([^"]+)"/g)].map((m) => m[1].split(' ').map((p) => Number(p.split(',')[1])));
    expect(points).toHaveLength(4);
    const pointGaps = gaps(points);
    for (const g of pointGaps) expect(g).toBeCloseTo(tickGaps[0], 1);
    // and the linear axis, for contrast, does not space them so
    const linear = lineChartSvg({ series: [{ name: 'v', points: [[1, 1], [2, 10], [3, 100], [4, 1000]] }], markers: false });
    const [linearPoints] = [...linear.matchAll(/<polyline points="([^"]+)"/g)].map((m) => m[1].split(' ').map((p) => Number(p.split(',')[1])));
    const linearGaps = gaps(linearPoints);
    expect(linearGaps[2]).toBeGreaterThan(10 * linearGaps[0]);
  });

  test('validates options', () => {
    expect(() => lineChartSvg({ series: [], width: 10 })).toThrow(/Expected integer between 50 and 20000 for width/);
    expect(() => lineChartSvg({ series: [{ name: 'x', points: [[1, 2, 3] as unknown as [number, number]] }] })).toThrow(/series\[0\]\.points\[0\]/);
    expect(() => lineChartSvg({ series: [], colour: 'red' } as never)).toThrow(/Unknown option 'colour'/);
    expect(() => lineChartSvg({ series: [], yScale: 'logarithmic' as 'log' })).toThrow(/yScale/);
  });

  test('nice ticks', () => {
    expect(niceTicks(0, 1, 5).ticks).toEqual([0, 0.2, 0.4, 0.6000000000000001, 0.8, 1]);
    expect(niceTicks(0.13, 2.9, 6)).toMatchObject({ step: 0.5 });
    expect(formatTick(0.30000000000000004, 0.1)).toBe('0.3');
    expect(formatTick(25000, 5000)).toBe('25000');
    expect(niceTicks(5, 5).ticks.length).toBeGreaterThan(1);
  });
});

function confusion(n: number, seed = 1): number[][] {
  let s = seed;
  const rand = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32);
  return Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? 20 + Math.floor(rand() * 20) : rand() < 0.04 ? 1 + Math.floor(rand() * 3) : 0)));
}

describe('confusionMatrixChart', () => {
  test('101 classes: a big, readable picture within maxSize', async () => {
    const names = Array.from({ length: 101 }, (_, i) => (i === 0 ? 'BACKGROUND_Google' : `class_${i}`));
    const png = await confusionMatrixChart({ matrix: confusion(101), classNames: names, title: 'Caltech-101' });
    const stats = await decode(png);
    expect(stats.width).toBeGreaterThan(1600);
    expect(stats.width).toBeLessThanOrEqual(2400);
    expect(stats.height).toBeLessThanOrEqual(2400);
    expect(stats.stdev).toBeGreaterThan(10);
    const svg = confusionMatrixSvg({ matrix: confusion(101), classNames: names });
    expect(svg).toContain('rotate(-90'); // column labels turned
    expect(svg).toContain('>BACKGROUND_Google<');
  });

  test('small matrices print their values, normalised per row by default', async () => {
    const m = [[8, 2, 0], [0, 10, 0], [5, 0, 5]];
    const svg = confusionMatrixSvg({ matrix: m, classNames: ['a&b', 'c', 'd'], cellSize: 60 });
    expect(svg).toContain('>80<');
    expect(svg).toContain('>50<');
    expect(svg).toContain('a&amp;b');
    const counts = confusionMatrixSvg({ matrix: m, classNames: ['a', 'c', 'd'], normalize: false, cellSize: 60 });
    expect(counts).toContain('>8<');
    const png = await confusionMatrixChart({ matrix: m, classNames: ['a', 'b', 'c'], cellSize: 60 });
    expect((await decode(png)).width).toBeGreaterThan(180);
  });

  test('rejects non-square or negative input', () => {
    expect(() => confusionMatrixSvg({ matrix: [[1, 2]], classNames: ['a'] })).toThrow(/matrix\[0\]/);
    expect(() => confusionMatrixSvg({ matrix: [[-1]], classNames: ['a'] })).toThrow(/non-negative/);
    expect(() => confusionMatrixSvg({ matrix: [[1]], classNames: ['a', 'b'] })).toThrow(/classNames/);
  });
});

describe('worstConfusions', () => {
  const names = ['cat', 'dog', 'fox', 'owl'];
  const m = [
    [10, 5, 1, 0],
    [7, 20, 0, 0],
    [0, 3, 2, 0],
    [0, 0, 3, 9],
  ];
  test('picks the largest off-diagonal cells, by count or by rate', () => {
    const top = worstConfusions(m, names, 3);
    expect(top.map((c) => `${c.trueClass}>${c.predictedClass}:${c.count}`)).toEqual(['dog>cat:7', 'cat>dog:5', 'fox>dog:3']);
    expect(top[0].rate).toBeCloseTo(7 / 27);
    expect(top[2]).toMatchObject({ trueIndex: 2, predictedIndex: 1, rate: 0.6 });
    const byRate = worstConfusions(m, names, 2, 'rate');
    expect(byRate.map((c) => `${c.trueClass}>${c.predictedClass}`)).toEqual(['fox>dog', 'cat>dog']); // 3/5, then 5/16 over dog>cat's 7/27
    expect(worstConfusions(m, names, 100)).toHaveLength(5); // zeros are never listed
    expect(worstConfusions([[3]], ['only'], 5)).toEqual([]);
  });

  test('bar chart of the pairs', async () => {
    const png = await worstConfusionsChart(worstConfusions(m, names, 4), { title: 'Worst' });
    const stats = await decode(png);
    expect(stats.width).toBe(800);
    expect(stats.height).toBeGreaterThan(100);
    expect(stats.stdev).toBeGreaterThan(10);
  });
});

describe('gradientNormChart', () => {
  const steps = Array.from({ length: 300 }, (_, i) => i * 5);
  const layers = (count: number) =>
    Object.fromEntries(Array.from({ length: count }, (_, l) => [`layer${l}.weight`, steps.map((s) => 10 ** (-3 + l / 10 + Math.sin(s / 100)))]));

  test('heat map for many layers, log colour scale', async () => {
    const lotsOfLayers = layers(40);
    lotsOfLayers['layer3.weight'][10] = 0; // zero and NaN do not break the log scale
    lotsOfLayers['layer4.weight'][20] = NaN;
    const svg = gradientNormSvg({ steps, layers: lotsOfLayers });
    expect(svg).toContain('layer39.weight');
    expect(svg).toContain('L2 norm');
    const png = await gradientNormChart({ steps, layers: lotsOfLayers, width: 1000 });
    const stats = await decode(png);
    expect(stats.width).toBe(1000);
    expect(stats.stdev).toBeGreaterThan(10);
  });

  test('lines on a log axis for a few layers', async () => {
    const svg = gradientNormSvg({ steps, layers: layers(3) });
    expect(svg.match(/<polyline /g)).toHaveLength(3);
    const png = await gradientNormChart({ steps, layers: layers(3), mode: 'lines', width: 700, height: 400 });
    expect(await decode(png)).toMatchObject({ width: 700, height: 400 });
  });

  test('validates lengths', () => {
    expect(() => gradientNormSvg({ steps: [1, 2], layers: { a: [1] } })).toThrow(/layers\['a'\]/);
  });
});

describe('scatterChart', () => {
  const points: Array<[number, number]> = [];
  const labels: number[] = [];
  for (let c = 0; c < 5; c++) {
    for (let i = 0; i < 20; i++) {
      points.push([Math.cos(c) * 10 + Math.sin(i), Math.sin(c) * 10 + Math.cos(i * 1.7)]);
      labels.push(c);
    }
  }

  test('coloured by class with a legend up to 20 classes', async () => {
    const names = ['a', 'b', 'c', 'd', '<e>'];
    const svg = scatterSvg({ points, labels, classNames: names, title: 't-SNE' });
    expect(svg).toContain('&lt;e&gt;');
    expect(svg.match(/<circle /g)!.length).toBe(points.length + names.length); // points + legend markers
    const png = await scatterChart({ points, labels, classNames: names, width: 600, height: 500 });
    expect(await decode(png)).toMatchObject({ width: 600, height: 500 });
  });

  test('flat Float64Array input and > 20 classes: no legend, names at clusters', () => {
    const flat = new Float64Array(points.flat());
    const manyNames = Array.from({ length: 30 }, (_, i) => `class${i}`);
    const manyLabels = labels.map((l, i) => (l * 7 + i) % 30);
    const svg = scatterSvg({ points: flat, labels: manyLabels, classNames: manyNames });
    expect(svg).toContain('>class29<');
    expect(svg).toContain('<rect x='); // classes 20..29 drawn as squares
  });

  test('validates labels', () => {
    expect(() => scatterSvg({ points, labels: labels.slice(1), classNames: ['a', 'b', 'c', 'd', 'e'] })).toThrow(/labels/);
    expect(() => scatterSvg({ points, labels, classNames: ['a', 'b'] })).toThrow(/labels\[40\]/);
  });
});
