// Loads the compiled addon: prebuilds/<platform>-<arch>/*.node (prebuildify's layout), then the
// cmake-js build. When nothing loads, one error lists every path tried, why each failed, and the fix.
import * as fs from 'fs';
import * as path from 'path';
import type { NativeAddon } from './native';
import { applyThreadPoolDefaults, type ThreadPoolSettings } from './thread-pools';

export type * from './native';
export { THREAD_POOL_DEFAULTS, type ThreadPoolSetting, type ThreadPoolSettings } from './thread-pools';

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
      if (name.endsWith('.node')) candidates.push(path.join(prebuildDir, name));
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

export function loadAddon(paths: string[] = candidatePaths()): NativeAddon {
  const failures: string[] = [];
  for (const file of paths) {
    if (!fs.existsSync(file)) {
      failures.push(`  ${file}: not found`);
      continue;
    }
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      return require(file) as NativeAddon;
    } catch (error) {
      const message = (error as Error).message.split('\n')[0];
      failures.push(`  ${file}: ${message}\n    fix: ${likelyFix(message)}`);
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
