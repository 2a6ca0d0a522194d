// Where the tests on real Caltech-101 images find them: $CALTECH101_DIR, which may be the folder
// holding 101_ObjectCategories (as torchvision's root, caltech101/101_ObjectCategories below it
// too) or the 101_ObjectCategories folder itself, the layouts scanDataset accepts.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { assertPresent, prerequisite, type Prerequisite } from './prerequisite';

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

/**
 * The real images as a prerequisite (test/helpers/prerequisite.ts): without them the tests that need
 * them are skipped, saying why, or, where CI is set, run and fail. `describe` adds a beforeAll that
 * fails its tests with the reason before any of them touches a missing folder.
 */
export function caltech101Prerequisite(what: string): Omit<Prerequisite, 'describe'> & {
  describe(name: string, body: () => void): void;
  dir: Caltech101Dir;
  /** The folder as given and the one holding the class folders; '' when missing. */
  root: string;
  categories: string;
} {
  const dir = caltech101Dir();
  const p = prerequisite(`real Caltech-101 images ($CALTECH101_DIR) for ${what}`, dir.skip ?? null);
  const guarded = (name: string, body: () => void): void =>
    p.describe(name, () => {
      beforeAll(() => assertPresent(p));
      body();
    });
  return { ...p, describe: guarded, dir, root: dir.root ?? '', categories: dir.categories ?? '' };
}
