// A log file that is only ever appended to: whole records written, fsync on flush and on close,
// closing twice harmless. MetricsLog (JSON lines) and EventWriter (TensorBoard records) sit on it.
import * as fs from 'fs';

export class AppendFile {
  private fd: number | null;

  /** Takes over an open file descriptor (the caller chose how to open it: 'a', 'wx', …). */
  constructor(readonly file: string, fd: number, private readonly owner: string) {
    this.fd = fd;
  }

  get closed(): boolean {
    return this.fd === null;
  }

  /** Writes all of `bytes` (a short write is continued, never dropped). */
  write(bytes: Uint8Array): void {
    if (this.fd === null) throw new Error(`${this.owner} for ${this.file} is closed`);
    let written = 0;
    while (written < bytes.length) written += fs.writeSync(this.fd, bytes, written, bytes.length - written);
  }

  /** Makes everything written so far durable (fsync). */
  flush(): void {
    if (this.fd !== null) fs.fsyncSync(this.fd);
  }

  /** Flushes and closes. Further writes throw; closing twice is harmless. */
  close(): void {
    if (this.fd === null) return;
    const fd = this.fd;
    this.fd = null;
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }
}
