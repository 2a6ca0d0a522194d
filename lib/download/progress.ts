// A download progress bar for terminals:
//   resnet18-f37072fd.pth  45% |█████████████▌                | 20.9/46.8 MB 5.1 MB/s ETA 5s
// On a TTY it redraws one line (at most every `intervalMs`); elsewhere (CI logs, pipes) it stays
// silent while bytes arrive and writes one summary line when the download ends.
import { formatDuration } from '../utils/format';
import { invalid, knownKeys, nonNegativeInteger, plainObject } from '../utils/validate';

/** `3s`, `2m05s`, `1h02m` (lib/utils/format's compact style), exported here for the download API. */
export { formatDuration };

export interface ProgressStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressBarOptions {
  /** Shown first on the line (e.g. the file name). Default ''. */
  name?: string;
  /** Least time between redraws on a TTY. Default 100. */
  intervalMs?: number;
  /** Clock in ms (for tests). Default Date.now. */
  now?: () => number;
}

/** A progress callback for downloadFile, plus `done()` to end the line when the size was unknown. */
export interface ProgressBar {
  (received: number, total: number | undefined): void;
  /** Ends the bar (newline on a TTY, the summary line elsewhere). Idempotent; called by itself when received reaches total. */
  done(): void;
}

const UNITS: Array<[number, string]> = [
  [1e9, 'GB'],
  [1e6, 'MB'],
  [1e3, 'kB'],
];

function unitFor(bytes: number): [number, string] {
  for (const [scale, name] of UNITS) if (bytes >= scale) return [scale, name];
  return [1, 'B'];
}

/** `12.3 MB`, `512 B`: decimal units, one decimal above bytes. */
export function formatBytes(bytes: number): string {
  const [scale, name] = unitFor(bytes);
  return scale === 1 ? `${Math.round(bytes)} B` : `${(bytes / scale).toFixed(1)} ${name}`;
}

const PARTIAL = ['', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];

/** The bar's cells for a fraction in [0, 1]. */
export function renderBar(fraction: number, width: number): string {
  const f = Math.min(1, Math.max(0, fraction));
  const eighths = Math.floor(f * width * 8);
  const full = Math.floor(eighths / 8);
  const partial = full < width ? PARTIAL[eighths % 8] : '';
  return '█'.repeat(full) + partial + ' '.repeat(width - full - (partial ? 1 : 0));
}

/**
 * One progress line: `name  45% |██████      | 12.3/27.4 MB 5.1 MB/s ETA 3s` (without total:
 * `name  12.3 MB 5.1 MB/s`). `rate` is in bytes per second.
 */
export function formatProgress(name: string, received: number, total: number | undefined, rate: number, barWidth = 30): string {
  const speed = rate > 0 && Number.isFinite(rate) ? ` ${formatBytes(rate)}/s` : '';
  if (total === undefined || total <= 0) return `${name ? `${name}  ` : ''}${formatBytes(received)}${speed}`;
  const fraction = Math.min(1, received / total);
  const [scale, unit] = unitFor(total);
  const amount = scale === 1 ? `${received}/${total} B` : `${(received / scale).toFixed(1)}/${(total / scale).toFixed(1)} ${unit}`;
  const eta = rate > 0 && received < total ? ` ETA ${formatDuration((total - received) / rate)}` : '';
  const bar = barWidth > 0 ? ` |${renderBar(fraction, barWidth)}|` : '';
  // 'name  45%', 'name   5%', 'name 100%': the percent right-aligned after one space.
  const pct = `${name ? `${name} ` : ''}${String(Math.floor(fraction * 100)).padStart(3)}%`;
  return `${pct}${bar} ${amount}${speed}${eta}`;
}

/** A progress callback that draws a bar on `stream` (default stderr); see the file comment. */
export function progressBar(stream: ProgressStream = process.stderr, options: ProgressBarOptions = {}): ProgressBar {
  if (typeof stream !== 'object' || stream === null || typeof stream.write !== 'function') {
    throw invalid('writable stream', 'stream', stream);
  }
  const o = plainObject('options', options);
  knownKeys('progressBar options', o, ['name', 'intervalMs', 'now']);
  if (o.name !== undefined && typeof o.name !== 'string') throw invalid('string', 'name', o.name);
  if (o.now !== undefined && typeof o.now !== 'function') throw invalid('function', 'now', o.now);
  const name = (o.name as string | undefined) ?? '';
  const intervalMs = o.intervalMs === undefined ? 100 : nonNegativeInteger('intervalMs', o.intervalMs);
  const now = (o.now as (() => number) | undefined) ?? Date.now;
  const tty = stream.isTTY === true;

  let startedAt: number | undefined;
  let baseline = 0; // bytes already there when this run started (a resumed .part)
  let lastReceived = 0;
  let lastTotal: number | undefined;
  let lastDraw = -Infinity;
  let finished = false;

  const rate = (t: number) => {
    const seconds = (t - (startedAt ?? t)) / 1000;
    return seconds > 0 ? (lastReceived - baseline) / seconds : 0;
  };

  const draw = (t: number) => {
    const columns = stream.columns && stream.columns > 20 ? stream.columns : 80;
    let line = formatProgress(name, lastReceived, lastTotal, rate(t), 30);
    if (line.length > columns - 1) {
      const withoutBar = formatProgress(name, lastReceived, lastTotal, rate(t), 0);
      const room = columns - 1 - withoutBar.length - 3;
      line = room >= 5 ? formatProgress(name, lastReceived, lastTotal, rate(t), room) : withoutBar.slice(0, columns - 1);
    }
    stream.write(`\r${line}\x1b[K`);
    lastDraw = t;
  };

  const bar = ((received: number, total: number | undefined) => {
    const t = now();
    if (finished) {
      // A retry after a finished bar (e.g. a checksum restart) starts a new one.
      if (received >= lastReceived) return;
      finished = false;
      startedAt = undefined;
    }
    if (startedAt === undefined || received < lastReceived) {
      startedAt = t;
      baseline = received;
    }
    lastReceived = received;
    lastTotal = total;
    if (total !== undefined && total > 0 && received >= total) {
      bar.done();
      return;
    }
    if (tty && t - lastDraw >= intervalMs) draw(t);
  }) as ProgressBar;

  bar.done = () => {
    if (finished) return;
    finished = true;
    const t = now();
    if (tty) {
      draw(t);
      stream.write('\n');
      return;
    }
    if (startedAt === undefined) return;
    const seconds = (t - startedAt) / 1000;
    const speed = rate(t);
    const pct = lastTotal ? `${String(Math.floor(Math.min(1, lastReceived / lastTotal) * 100)).padStart(3)}% ` : ' ';
    stream.write(
      `${name ? `${name} ` : ''}${pct}${formatBytes(lastReceived)} in ${seconds.toFixed(1)}s${speed > 0 ? ` (${formatBytes(speed)}/s)` : ''}\n`,
    );
  };
  return bar;
}
