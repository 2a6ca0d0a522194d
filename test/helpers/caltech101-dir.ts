// Where the tests on real Caltech-101 images find them: $CALTECH101_DIR, which may be the folder
// holding 101_ObjectCategories (as torchvision's root, caltech101/101_ObjectCategories below it
// too) or the 101_ObjectCategories folder itself, the layouts scanDataset accepts.
import * as fs from 'node:fs';
import * as path from 'node:path';

export type Caltech101Dir =
  /** root: the folder as given (for scanDataset); categories: the folder holding the class folders. */
  | { root: string; categories: string; skip?: undefined }
  /** Why the real-image tests are skipped here. */
  | { root?: undefined; categories?: undefined; skip: string };

const isDir = (p: string): boolean => fs.statSync(p, { throwIfNoEntry: false })?.isDirectory() ?? false;

export function caltech101Dir(): Caltech101Dir {
  const value = process.env.CALTECH101_DIR;
  if (!value) return { skip: 'CALTECH101_DIR not set' };
  const root = path.resolve(value);
  if (!isDir(root)) return { skip: `CALTECH101_DIR=${value} is not a folder` };
  const nested = [path.join(root, '101_ObjectCategories'), path.join(root, 'caltech101', '101_ObjectCategories')].find(isDir);
  const categories = nested ?? (isDir(path.join(root, 'Faces')) ? root : undefined);
  if (!categories) return { skip: `CALTECH101_DIR=${value} neither holds 101_ObjectCategories nor is it (no Faces folder in it)` };
  return { root, categories };
}

/** Says why tests are skipped, on stderr: jest shows no console output of a file whose tests were all skipped. */
export function announceSkip(message: string): void {
  process.stderr.write(`${message}\n`);
}
