// A phase's run folder: checkpoints/, logs/, config.yaml, split.json, results.json, pictures/.
import * as fs from 'fs';
import * as path from 'path';
import YAML from 'yaml';
import type { PhaseConfig } from './phases';

export interface RunFolder {
  dir: string;
  /** The folder's name, used as the run's name in logs and tables. */
  name: string;
  checkpoints: string;
  logs: string;
  /** checkpoints/last.pth: the latest epoch (what --resume continues from). */
  last: string;
  /** checkpoints/best.pth: a hard link to the best epoch's last.pth. */
  best: string;
}

/** `20261130-134512`: run folder names sort by start time. */
export function timestamp(): string {
  return new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
}

export function runFolder(dir: string): RunFolder {
  const checkpoints = path.join(dir, 'checkpoints');
  return {
    dir,
    name: path.basename(dir),
    checkpoints,
    logs: path.join(dir, 'logs'),
    last: path.join(checkpoints, 'last.pth'),
    best: path.join(checkpoints, 'best.pth'),
  };
}

/**
 * The phase's folder (the resumed one, or a new one under output_dir), checked writable, with the
 * resolved config.yaml in it.
 */
export function createRunFolder(config: PhaseConfig, resumeDir?: string): RunFolder {
  const folder = runFolder(resumeDir ?? path.join(config.output_dir, config.run_name ?? `${config.arch}-${config.phase}-${timestamp()}`));
  prepareRunFolder(folder.dir, [folder.checkpoints, folder.logs]);
  fs.writeFileSync(path.join(folder.dir, 'config.yaml'), YAML.stringify(config));
  return folder;
}

/**
 * Creates the run folders and proves they can be written (a read-only or full disk fails here, not
 * after an epoch), and removes temp files a killed run left behind (its checkpoints are intact).
 */
function prepareRunFolder(runDir: string, folders: string[]): void {
  const probe = (folder: string) => {
    const file = path.join(folder, `.write-test-${process.pid}`);
    fs.writeFileSync(file, Buffer.alloc(4096));
    fs.rmSync(file);
  };
  for (const folder of folders) {
    try {
      fs.mkdirSync(folder, { recursive: true });
      probe(folder);
    } catch (error) {
      // a recursive mkdir can report ENOENT for what is really a read-only or full disk: ask the
      // nearest existing folder for the real reason
      let reason = (error as Error).message;
      let existing = path.dirname(folder);
      while (!fs.existsSync(existing)) existing = path.dirname(existing);
      try {
        probe(existing);
      } catch (real) {
        reason = (real as Error).message;
      }
      throw new Error(`cannot write the run folder ${runDir}: ${reason}`);
    }
    for (const name of fs.readdirSync(folder)) {
      if (/\.tmp-\d+/.test(name)) fs.rmSync(path.join(folder, name), { force: true });
    }
  }
}
