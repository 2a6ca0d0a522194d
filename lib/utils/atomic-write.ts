// Writes a file so that a crash leaves either the old content or the new, never a torn file.
import * as fs from 'fs';
import * as path from 'path';

export async function writeFileAtomic(file: string, chunks: Array<Uint8Array | string>): Promise<void> {
  const temp = `${file}.tmp-${process.pid}-${Date.now()}`;
  const handle = await fs.promises.open(temp, 'w', 0o644);
  try {
    for (const chunk of chunks) {
      if (typeof chunk === 'string') await handle.write(chunk);
      else await handle.write(chunk);
    }
    await handle.sync();
  } catch (error) {
    await handle.close().catch(() => undefined);
    await fs.promises.rm(temp, { force: true });
    throw error;
  }
  await handle.close();
  await renameIntoPlace(temp, file);
}

/** Renames a finished temp file over `file`, then syncs the folder so the rename is durable. */
async function renameIntoPlace(temp: string, file: string): Promise<void> {
  try {
    await fs.promises.rename(temp, file);
  } catch (error) {
    await fs.promises.rm(temp, { force: true });
    throw error;
  }
  const dir = await fs.promises.open(path.dirname(path.resolve(file)), 'r');
  await dir.sync().catch(() => undefined);
  await dir.close();
}

/**
 * Makes `target` a second name for the finished file `source` (a hard link; a copy where the file
 * system has none), atomically. Safe because files here are only ever replaced by rename, never
 * rewritten in place: a later write of `source` leaves `target` holding this content.
 */
export async function linkFileAtomic(source: string, target: string): Promise<void> {
  const temp = `${target}.tmp-${process.pid}-${Date.now()}`;
  try {
    await fs.promises.link(source, temp);
  } catch {
    await fs.promises.copyFile(source, temp);
    const handle = await fs.promises.open(temp, 'r+');
    await handle.sync().finally(() => handle.close());
  }
  await renameIntoPlace(temp, target);
}
