// Loads the compiled addon: prebuilds/<platform>-<arch>/*.node (prebuildify's layout), then the
// cmake-js build. A prebuilt named for a libtorch version (finetorch.libtorch-1.13.node) is loaded
// over the first libtorch installation of that version (binding/libtorch.ts). When nothing loads,
// one error lists every path tried, why each failed, and the fix.
import * as fs from 'fs';
import * as path from 'path';
import {
  describeInstallation,
  findLibtorchInstallations,
  majorMinor,
  libtorchFiles,
  openLibtorch,
  prebuiltLibtorchVersion,
  type LibtorchInstallation,
  type Preloader,
} from './libtorch';
import type { NativeAddon } from './native';
import { applyThreadPoolDefaults, type ThreadPoolSettings } from './thread-pools';

export type * from './native';
export { THREAD_POOL_DEFAULTS, type ThreadPoolSetting, type ThreadPoolSettings } from './thread-pools';
export { findLibtorchInstallations, loadedLibtorchFile, type LibtorchInstallation } from './libtorch';

/** The addon files of a prebuilds folder: finetorch.node, or finetorch.libtorch-<version>.node. */
const ADDON_NAME = /^finetorch(\.libtorch-\d+\.\d+)?\.node$/;

/** The package root: the nearest folder above this file whose package.json names finetorch. */
export function packageRoot(start: string = __dirname): string {
  let dir = start;
  for (;;) {
    const manifest = path.join(dir, 'package.json');
    if (fs.existsSync(manifest)) {
      try {
        if (JSON.parse(fs.readFileSync(manifest, 'utf8')).name === 'finetorch') return dir;
      } catch {
        // an unreadable package.json is not ours; keep walking up
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) return path.resolve(start, '..');
    dir = parent;
  }
}

/** Candidate addon files in the order they are tried. */
export function candidatePaths(root: string = packageRoot()): string[] {
  const candidates: string[] = [];
  const prebuildDir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
  if (fs.existsSync(prebuildDir)) {
    for (const name of fs.readdirSync(prebuildDir).sort()) {
      if (ADDON_NAME.test(name)) candidates.push(path.join(prebuildDir, name));
    }
  } else {
    candidates.push(path.join(prebuildDir, 'finetorch.node'));
  }
  candidates.push(path.join(root, 'build', 'Release', 'finetorch.node'));
  return candidates;
}

function likelyFix(message: string): string {
  const missingLibrary = /(lib[\w.+-]+\.so[\w.]*): cannot open shared object file/.exec(message);
  if (missingLibrary) {
    const lib = missingLibrary[1];
    if (/torch|c10/.test(lib)) {
      return `${lib} not found: run scripts/setup.sh (installs Debian's libtorch-dev) or set LIBTORCH=/path/to/libtorch and rebuild with 'npm run build:native'`;
    }
    return `${lib} not found: install the library that provides it (on Debian: apt-file search ${lib})`;
  }
  if (/ENOENT|no such file|Cannot find module/i.test(message)) {
    return "not built: run 'bash scripts/setup.sh' (or 'npm run build:native')";
  }
  if (/undefined symbol/.test(message)) {
    return 'built against a different libtorch than the one found now: rebuild with npm run build:native';
  }
  return 'rebuild with npm run build:native; see README.md, "How libtorch is found"';
}

/** Which addon file loaded, and over which libtorch installation (null: the addon's own RPATH/system search). */
export interface LoadedAddon {
  file: string;
  libtorch: LibtorchInstallation | null;
}

let loadedFrom: LoadedAddon | undefined;

/** Where the addon was loaded from (after native()); undefined before. */
export function loadedAddon(): LoadedAddon | undefined {
  return loadedFrom;
}

/**
 * Opens, for a prebuilt named for a libtorch version, the first installation of that version.
 * Returns null for an addon without a version in its name (a local build finds its libtorch itself).
 */
function prepareLibtorch(file: string, installations: () => LibtorchInstallation[]): LibtorchInstallation | null {
  const wanted = prebuiltLibtorchVersion(file);
  if (!wanted) return null;
  const found = installations();
  const matching = found.filter((i) => majorMinor(i.version) === wanted);
  if (matching.length === 0) {
    const seen = found.length ? found.map(describeInstallation).join('; ') : 'no libtorch (LIBTORCH unset, no Python torch, none in the system library folders)';
    throw Object.assign(new Error(`built for libtorch ${wanted}, found ${seen}`), {
      fix: `install libtorch ${wanted} (Debian: apt-get install libtorch-dev; pip install "torch==${wanted}.*"; or an official libtorch zip) and point LIBTORCH at it, or build for your libtorch with 'npm run build:native'`,
    });
  }
  const preloaderFile = path.join(path.dirname(file), 'finetorch_preload.node');
  if (!fs.existsSync(preloaderFile)) throw new Error(`finetorch_preload.node is missing beside it (${preloaderFile})`);
  // the first installation of the right version that has every library the addon needs
  const problems: string[] = [];
  for (const installation of matching) {
    let files: string[];
    try {
      files = libtorchFiles(file, installation);
    } catch (error) {
      problems.push((error as Error).message);
      continue;
    }
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    openLibtorch(files, installation, require(preloaderFile) as Preloader);
    return installation;
  }
  throw new Error(problems.join('; '));
}

export function loadAddon(paths: string[] = candidatePaths()): NativeAddon {
  const failures: string[] = [];
  let installations: LibtorchInstallation[] | undefined;
  const listInstallations = () => (installations ??= findLibtorchInstallations());
  for (const file of paths) {
    if (!fs.existsSync(file)) {
      failures.push(`  ${file}: not found`);
      continue;
    }
    try {
      const libtorch = prepareLibtorch(file, listInstallations);
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const addon = require(file) as NativeAddon;
      loadedFrom = { file, libtorch };
      return addon;
    } catch (error) {
      const message = (error as Error).message.split('\n')[0];
      const fix = (error as Error & { fix?: string }).fix ?? likelyFix(message);
      failures.push(`  ${file}: ${message}\n    fix: ${fix}`);
    }
  }
  const err = new Error(
    `Could not load the finetorch native addon. Tried:\n${failures.join('\n')}\n` +
      'Possible solutions:\n' +
      '  - run "bash scripts/setup.sh" to install libtorch (Debian libtorch-dev) and build the addon\n' +
      '  - or set LIBTORCH to an unpacked libtorch and run "npm run build:native"',
  );
  (err as Error & { tried?: string[] }).tried = paths;
  throw err;
}

let cached: NativeAddon | undefined;
let threadPools: ThreadPoolSettings | undefined;

/** The addon, loaded once per process, after the thread pools' spin settings are in place. */
export function native(): NativeAddon {
  if (!cached) {
    threadPools ??= applyThreadPoolDefaults();
    cached = loadAddon();
  }
  return cached;
}

/** The thread pools' settings as they were when libtorch was loaded (after native()). */
export function threadPoolSettings(): ThreadPoolSettings {
  native();
  return threadPools as ThreadPoolSettings;
}
