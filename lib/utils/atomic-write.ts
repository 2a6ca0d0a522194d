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
