// Running averages and the progress line of an epoch, as in pytorch/examples' imagenet main.py.

import { formatDuration } from '../utils/format';

export class AverageMeter {
  sum = 0;
  count = 0;
  constructor(readonly name: string) {}
  update(value: number, n = 1): void {
    this.sum += value * n;
    this.count += n;
  }
  get average(): number {
    return this.count === 0 ? 0 : this.sum / this.count;
  }
}

/** One line per epoch: redrawn in place on a TTY, printed once at the end otherwise, silent when quiet. */
export class ProgressLine {
  private readonly started = Date.now();
  private lastDraw = 0;
  constructor(
    private readonly label: string,
    private readonly total: number,
    private readonly options: { quiet?: boolean; stream?: NodeJS.WriteStream } = {},
  ) {}

  private get stream(): NodeJS.WriteStream {
    return this.options.stream ?? process.stderr;
  }

  private text(done: number, fields: Record<string, string>): string {
    const elapsed = (Date.now() - this.started) / 1000;
    const eta = done > 0 ? (elapsed / done) * (this.total - done) : NaN;
    const width = 20;
    const filled = this.total > 0 ? Math.round((done / this.total) * width) : width;
    const bar = `${'█'.repeat(filled)}${' '.repeat(width - filled)}`;
    const extra = Object.entries(fields).map(([k, v]) => `${k} ${v}`).join('  ');
    return `${this.label} |${bar}| ${done}/${this.total}  ${extra}  ${done < this.total ? `ETA ${formatDuration(eta)}` : formatDuration(elapsed)}`;
  }

  update(done: number, fields: Record<string, string>): void {
    if (this.options.quiet || !this.stream.isTTY) return;
    const now = Date.now();
    if (now - this.lastDraw < 100 && done < this.total) return;
    this.lastDraw = now;
    this.stream.write(`\r\x1b[2K${this.text(done, fields)}`);
  }

  finish(fields: Record<string, string>): void {
    if (this.options.quiet) return;
    const line = this.text(this.total, fields);
    this.stream.write(this.stream.isTTY ? `\r\x1b[2K${line}\n` : `${line}\n`);
  }
}
