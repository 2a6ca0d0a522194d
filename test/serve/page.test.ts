// The page at / in headless Chromium: the run's name, classes and test accuracy are shown; images
// chosen through the file input come back as bars whose classes and probabilities are the server's
// JSON for those images; a non-image shows the server's message. The screenshot is kept in
// outputs/test/serve/ (git-ignored; FINETORCH_SERVE_ARTIFACTS chooses another folder).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { readResults } from '../../lib/experiment/results';
import { loadRun, type LoadedRun } from '../../lib/experiment/runs';
import { getNumThreads, setNumThreads } from '../../lib/runtime';
import { createPredictionServer, type PredictionServer } from '../../lib/serve/server';
import { ROOT } from '../helpers/cli-process';
import { assertPresent, prerequisite } from '../helpers/prerequisite';
import { createTinyRun, type TinyRun } from '../helpers/tiny-run';
import { postImage } from '../helpers/http-client';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = process.env.FINETORCH_SERVE_ARTIFACTS ?? path.join(ROOT, 'outputs', 'test', 'serve');

function playwrightMissing(): string | null {
  if (!fs.existsSync(CHROMIUM)) return `${CHROMIUM} is absent (apt-get install chromium)`;
  try {
    require.resolve('playwright-core');
    return null;
  } catch {
    return 'playwright-core is not installed (npm install)';
  }
}
const chromium = prerequisite('Chromium with playwright-core (drives the page)', playwrightMissing());

let dir: string;
let tiny: TinyRun;
let run: LoadedRun;
let served: PredictionServer;
let threads: number;

beforeAll(async () => {
  if (chromium.missing) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-serve-page-'));
  tiny = await createTinyRun(dir, { classes: 6, perClass: 4, name: 'page-run' });
  run = await loadRun(tiny.runDir);
  threads = getNumThreads();
  setNumThreads(1); // two intra-op threads spin against each other on a small, busy machine
  served = await createPredictionServer(run, { port: 0 });
  setNumThreads(threads);
});
// set per test and put back after each (state-restore checks the count after the last test)
beforeEach(() => setNumThreads(1));
afterEach(() => threads && setNumThreads(threads));
afterAll(async () => {
  await served?.close();
  run?.model.dispose();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

interface ShownResult {
  file: string;
  state: string;
  error: string | null;
  rows: Array<{ className: string; probability: number; label: string; value: string; width: string; fraction: number }>;
}

chromium.test('pick images through the input: each gets its top-5 as bars, the server\'s numbers; the run is described', async () => {
  assertPresent(chromium);
  const { chromium: browserType } = require('playwright-core') as typeof import('playwright-core');
  const browser = await browserType.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 800 } });
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console: ${m.text()}`);
    });
    await page.goto(served.url);

    // the run: name, network, classes, test accuracy (from results.json)
    const results = readResults(tiny.runDir);
    expect(await page.textContent('#run-name')).toBe('page-run');
    expect(await page.textContent('#arch')).toBe('resnet18');
    expect(await page.$$eval('#classes li', (items) => items.map((li) => li.textContent))).toEqual(tiny.dataset.classes);
    const accuracy = await page.textContent('#test-accuracy');
    expect(accuracy).toContain(`test top-1 ${(results.test.top1 * 100).toFixed(1)}%`);
    expect(accuracy).toContain(`top-5 ${(results.test.top5 * 100).toFixed(1)}%`);

    // two images (a JPEG and a PNG) and a text file, chosen through the <input type=file>
    const jpeg = tiny.images[0];
    const png = tiny.images.find((f) => f.endsWith('.png'))!;
    const notes = path.join(dir, 'notes.txt');
    fs.writeFileSync(notes, 'not an image');
    await page.setInputFiles('#file', [jpeg, png, notes]);
    await page.waitForSelector('.result[data-state="done"] >> nth=1');
    await page.waitForSelector('.result[data-state="error"]');

    const shown: ShownResult[] = await page.$$eval('.result', (cards) =>
      cards.map((card) => ({
        file: (card as HTMLElement).dataset.file ?? '',
        state: (card as HTMLElement).dataset.state ?? '',
        error: card.querySelector('.error')?.textContent ?? null,
        rows: [...card.querySelectorAll<HTMLElement>('.bar-row')].map((row) => {
          const bar = row.querySelector<HTMLElement>('.bar')!;
          const track = row.querySelector<HTMLElement>('.track')!;
          return {
            className: row.dataset.class ?? '',
            probability: Number(row.dataset.probability),
            label: row.querySelector('.label')?.textContent ?? '',
            value: row.querySelector('.value')?.textContent ?? '',
            width: bar.style.width,
            fraction: bar.getBoundingClientRect().width / track.getBoundingClientRect().width,
          };
        }),
      })),
    );
    expect(shown.map((s) => [s.file, s.state]).sort()).toEqual([
      [path.basename(jpeg), 'done'], [path.basename(png), 'done'], ['notes.txt', 'error'],
    ].sort());
    for (const file of [jpeg, png]) {
      const card = shown.find((s) => s.file === path.basename(file))!;
      const answer = await postImage(served.url, fs.readFileSync(file));
      expect(answer.json.top).toHaveLength(5);
      expect(card.rows.map((r) => ({ className: r.className, probability: r.probability }))).toEqual(answer.json.top);
      for (const [i, row] of card.rows.entries()) {
        const p = answer.json.top[i].probability;
        expect(row.label).toBe(answer.json.top[i].className);
        expect(row.value).toBe(`${(p * 100).toFixed(2)}%`);
        // the style as the page set it; the browser reads "16.00%" back as "16%"
        expect(row.width).toMatch(/%$/);
        expect(parseFloat(row.width)).toBe(Number((p * 100).toFixed(2)));
        expect(Math.abs(row.fraction - p)).toBeLessThan(0.02); // the bar is drawn that long
      }
    }
    expect(shown.find((s) => s.file === 'notes.txt')!.error).toMatch(/^Expected an image file .*not an image/);
    // the 400 for the text file is the only failed load; no script errors
    expect(problems.filter((p) => !/status of 400/.test(p))).toEqual([]);

    fs.mkdirSync(ARTIFACTS, { recursive: true });
    const screenshot = path.join(ARTIFACTS, 'serve-page.png');
    await page.screenshot({ path: screenshot, fullPage: true });
    const meta = await sharp(screenshot).metadata();
    expect(meta.width).toBe(1100);
    const { data } = await sharp(screenshot).removeAlpha().greyscale().raw().toBuffer({ resolveWithObject: true });
    expect(new Set(data).size).toBeGreaterThan(20); // not blank
    process.stdout.write(`serve page screenshot: ${screenshot}\n`);
  } finally {
    await browser.close();
  }
});
