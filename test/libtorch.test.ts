// Finding libtorch at load time (binding/libtorch.ts): a prebuilt named for its libtorch version
// loads over an installation in any folder, and says what it found when none fits.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { packageRoot } from '../binding';
import {
  elfDynamic,
  findLibtorchInstallations,
  libtorchLibrariesNeeded,
  libtorchVersion,
  loadedLibtorchFile,
  majorMinor,
  prebuiltLibtorchVersion,
} from '../binding/libtorch';

const root = packageRoot();
const builtAddon = path.join(root, 'build', 'Release', 'finetorch.node');
const builtPreloader = path.join(root, 'build', 'Release', 'finetorch_preload.node');

function tempDir(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `finetorch-${tag}-`));
}

function readelf(file: string): { needed: string[]; soname: string | null } {
  const out = spawnSync('readelf', ['-d', file], { encoding: 'utf8' }).stdout;
  const needed = [...out.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
  const soname = /\(SONAME\)\s+Library soname: \[([^\]]+)\]/.exec(out)?.[1] ?? null;
  return { needed, soname };
}

describe('reading ELF dynamic sections', () => {
  test('NEEDED and SONAME equal readelf on the addon and on libtorch itself', () => {
    expect(elfDynamic(builtAddon)).toEqual(readelf(builtAddon));
    const libtorchCpu = fs.realpathSync(loadedLibtorchFileAfterLoad());
    const own = elfDynamic(libtorchCpu);
    expect(own).toEqual(readelf(libtorchCpu));
    expect(own.soname).toMatch(/^libtorch_cpu\.so/);
  });

  test('the libtorch libraries the addon needs come dependencies first', () => {
    const libs = libtorchLibrariesNeeded(builtAddon);
    const at = (re: RegExp) => libs.findIndex((l) => re.test(l));
    expect(at(/^libc10\.so/)).toBe(0);
    expect(at(/^libtorch_cpu\.so/)).toBeGreaterThan(at(/^libc10\.so/));
    expect(at(/^libtorch\.so/)).toBeGreaterThan(at(/^libtorch_cpu\.so/));
    expect(libs.every((l) => /^lib(c10|torch)/.test(l))).toBe(true);
  });

  test('a file that is not ELF is named in the error', () => {
    const dir = tempDir('elf');
    fs.writeFileSync(path.join(dir, 'x.node'), 'not an ELF file at all, but long enough to have a header here......');
    expect(() => elfDynamic(path.join(dir, 'x.node'))).toThrow(/x\.node: not an ELF file/);
    fs.rmSync(dir, { recursive: true });
  });
});

function loadedLibtorchFileAfterLoad(): string {
  // the addon is loaded by the import of ../binding's native() elsewhere; load it here too
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require('../binding').native();
  const file = loadedLibtorchFile();
  if (!file) throw new Error('no libtorch_cpu mapped after loading the addon');
  return file;
}

describe('versions', () => {
  test('from prebuilt names, version strings and the files an installation carries', () => {
    expect(prebuiltLibtorchVersion('/x/prebuilds/linux-x64/finetorch.libtorch-1.13.node')).toBe('1.13');
    expect(prebuiltLibtorchVersion('/x/prebuilds/linux-x64/finetorch.libtorch-2.10.node')).toBe('2.10');
    expect(prebuiltLibtorchVersion('/x/build/Release/finetorch.node')).toBeNull();
    expect(majorMinor('2.5.1+cu124')).toBe('2.5');
    expect(majorMinor('1.13.0a0')).toBe('1.13');
    expect(majorMinor(null)).toBeNull();

    const dir = tempDir('versions');
    const lib = path.join(dir, 'lib');
    fs.mkdirSync(path.join(dir, 'share', 'cmake', 'Torch'), { recursive: true });
    fs.mkdirSync(lib);
    fs.writeFileSync(path.join(lib, 'libtorch_cpu.so.1.13.0'), '');
    expect(libtorchVersion(dir, lib)).toBe('1.13.0'); // the versioned soname (Debian)
    fs.writeFileSync(path.join(dir, 'share', 'cmake', 'Torch', 'TorchConfigVersion.cmake'), 'set(PACKAGE_VERSION "2.4.0")\n');
    expect(libtorchVersion(dir, lib)).toBe('2.4.0'); // the cmake package (any libtorch)
    fs.writeFileSync(path.join(dir, 'build-version'), '2.5.1+cpu\n');
    expect(libtorchVersion(dir, lib)).toBe('2.5.1+cpu'); // the official zip's own file
    fs.rmSync(dir, { recursive: true });
  });
});

describe('finding installations', () => {
  test('LIBTORCH, given as the prefix or as its lib/, is the only candidate', () => {
    const dir = tempDir('libtorch-env');
    fs.mkdirSync(path.join(dir, 'lib'));
    fs.writeFileSync(path.join(dir, 'lib', 'libtorch_cpu.so'), '');
    fs.writeFileSync(path.join(dir, 'build-version'), '2.6.0+cu126\n');
    for (const value of [dir, path.join(dir, 'lib')]) {
      expect(findLibtorchInstallations({ ...process.env, LIBTORCH: value })).toEqual([
        { source: 'LIBTORCH', libDir: path.join(dir, 'lib'), version: '2.6.0+cu126' },
      ]);
    }
    fs.rmSync(dir, { recursive: true });
  });

  test("a Python's torch is found without importing it, before the system's", () => {
    const dir = tempDir('python-torch');
    const torchDir = path.join(dir, 'site-packages', 'torch');
    fs.mkdirSync(path.join(torchDir, 'lib'), { recursive: true });
    fs.writeFileSync(path.join(torchDir, 'lib', 'libtorch_cpu.so'), '');
    fs.writeFileSync(path.join(torchDir, 'version.py'), "__version__ = '2.3.1+cpu'\ndebug = False\n");
    // a stand-in python that answers the find_spec question the way a pip install would
    const python = path.join(dir, 'python');
    fs.writeFileSync(python, `#!/bin/sh\ncase "$2" in *find_spec*) echo '${torchDir}';; *) exit 1;; esac\n`, { mode: 0o755 });
    const env = { ...process.env, LIBTORCH: '', FINETORCH_PYTHON: python };
    delete env.LIBTORCH;
    const found = findLibtorchInstallations(env);
    expect(found[0]).toEqual({ source: 'python torch', libDir: path.join(torchDir, 'lib'), version: '2.3.1+cpu' });
    // the system's libtorch (Debian's, which these tests run on) follows
    expect(found.slice(1).some((i) => i.source === 'system' && majorMinor(i.version) === '1.13')).toBe(true);
    fs.rmSync(dir, { recursive: true });
  });
});

/**
 * A package folder holding only dist/binding and a prebuilt named for `version`: the addon this
 * checkout built, without its RPATH where patchelf exists, and the preloader beside it.
 */
function packageWithPrebuilt(version: string, options: { preloader?: boolean } = {}): string {
  const dir = tempDir('prebuilt');
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'finetorch' }));
  fs.cpSync(path.join(root, 'dist', 'binding'), path.join(dir, 'binding'), { recursive: true });
  const prebuilds = path.join(dir, 'prebuilds', `${process.platform}-${process.arch}`);
  fs.mkdirSync(prebuilds, { recursive: true });
  const addon = path.join(prebuilds, `finetorch.libtorch-${version}.node`);
  fs.copyFileSync(builtAddon, addon);
  spawnSync('patchelf', ['--remove-rpath', addon]);
  if (options.preloader !== false) fs.copyFileSync(builtPreloader, path.join(prebuilds, 'finetorch_preload.node'));
  return dir;
}

/** A libtorch prefix in a temporary folder: copies of the libraries this process loaded. */
function copiedLibtorch(options: { without?: RegExp } = {}): string {
  const systemLib = path.dirname(loadedLibtorchFileAfterLoad());
  const prefix = tempDir('libtorch-copy');
  fs.mkdirSync(path.join(prefix, 'lib'));
  for (const name of fs.readdirSync(systemLib).filter((n) => /^lib(c10|torch_cpu|torch)\.so/.test(n))) {
    if (options.without?.test(name)) continue;
    const from = path.join(systemLib, name);
    const to = path.join(prefix, 'lib', name);
    if (fs.lstatSync(from).isSymbolicLink()) fs.symlinkSync(fs.readlinkSync(from), to);
    else fs.copyFileSync(from, to);
  }
  return prefix;
}

/** Loads the package's addon in a child process; prints where the addon and libtorch_cpu came from. */
function loadIn(pkg: string, env: NodeJS.ProcessEnv) {
  const script = `
    const b = require('./binding');
    try {
      const addon = b.native();
      console.log(JSON.stringify({ addon: b.loadedAddon(), libtorchCpu: b.loadedLibtorchFile(), torch: addon.info().torchVersion }));
    } catch (e) { console.log(JSON.stringify({ error: e.message })); }`;
  const run = spawnSync(process.execPath, ['-e', script], { cwd: pkg, env, encoding: 'utf8', timeout: 120_000 });
  if (run.status !== 0) throw new Error(`child exited ${run.status}: ${run.stderr}`);
  return JSON.parse(run.stdout.trim().split('\n').pop() as string);
}

describe('loading a prebuilt over the libtorch it finds', () => {
  const hasPatchelf = spawnSync('patchelf', ['--version']).status === 0;

  test('LIBTORCH=<a copy elsewhere>: the copy is the libtorch mapped, not the system one', () => {
    const pkg = packageWithPrebuilt('1.13');
    const prefix = copiedLibtorch();
    const prebuilt = path.join(pkg, 'prebuilds', `${process.platform}-${process.arch}`, 'finetorch.libtorch-1.13.node');
    // without patchelf the copy keeps the build's RPATH; the preloaded libraries win either way
    if (hasPatchelf) expect(spawnSync('readelf', ['-d', prebuilt], { encoding: 'utf8' }).stdout).not.toMatch(/RPATH|RUNPATH/);
    const result = loadIn(pkg, { ...process.env, LIBTORCH: prefix });
    expect(result.error).toBeUndefined();
    expect(result.addon.file).toContain(path.join('prebuilds', `${process.platform}-${process.arch}`, 'finetorch.libtorch-1.13.node'));
    expect(result.addon.libtorch).toEqual({ source: 'LIBTORCH', libDir: path.join(prefix, 'lib'), version: expect.stringMatching(/^1\.13/) });
    expect(result.libtorchCpu.startsWith(path.join(prefix, 'lib') + path.sep)).toBe(true);
    expect(result.torch).toMatch(/^1\.13/);
    fs.rmSync(pkg, { recursive: true });
    fs.rmSync(prefix, { recursive: true });
  });

  test('a libtorch of another version is refused with what was found and what is needed', () => {
    const pkg = packageWithPrebuilt('9.9');
    const prefix = copiedLibtorch();
    const result = loadIn(pkg, { ...process.env, LIBTORCH: prefix });
    expect(result.error).toMatch(/finetorch\.libtorch-9\.9\.node: built for libtorch 9\.9, found libtorch 1\.13[.\w]* at .*\(LIBTORCH\)/);
    expect(result.error).toMatch(/fix: install libtorch 9\.9 .*point LIBTORCH at it, or build for your libtorch with 'npm run build:native'/);
    fs.rmSync(pkg, { recursive: true });
    fs.rmSync(prefix, { recursive: true });
  });

  test('an installation missing a library the addon needs is named, and nothing half-loads', () => {
    const pkg = packageWithPrebuilt('1.13');
    const prefix = copiedLibtorch({ without: /^libtorch\.so/ });
    const result = loadIn(pkg, { ...process.env, LIBTORCH: prefix });
    expect(result.error).toMatch(/libtorch 1\.13[.\w]* at .*\(LIBTORCH\) has no libtorch\.so[.\d]*, which finetorch\.libtorch-1\.13\.node needs/);
    fs.rmSync(pkg, { recursive: true });
    fs.rmSync(prefix, { recursive: true });
  });

  test('a library that will not open is named with the dynamic linker\'s reason and the way out', () => {
    const pkg = packageWithPrebuilt('1.13');
    const prefix = copiedLibtorch();
    const c10 = fs.readdirSync(path.join(prefix, 'lib')).find((n) => /^libc10\.so/.test(n) && !fs.lstatSync(path.join(prefix, 'lib', n)).isSymbolicLink()) as string;
    fs.writeFileSync(path.join(prefix, 'lib', c10), 'damaged');
    const result = loadIn(pkg, { ...process.env, LIBTORCH: prefix });
    expect(result.error).toMatch(/opening .*libc10\.so[.\d]* of libtorch 1\.13[.\w]* at .*\(LIBTORCH\): .*(file too short|invalid ELF header)/);
    expect(result.error).toMatch(/fix: that libtorch is damaged or unusable here: reinstall it, or point LIBTORCH at another libtorch 1\.13/);
    fs.rmSync(pkg, { recursive: true });
    fs.rmSync(prefix, { recursive: true });
  });

  test('without the preloader beside it, the prebuilt says so', () => {
    const pkg = packageWithPrebuilt('1.13', { preloader: false });
    const result = loadIn(pkg, { ...process.env, LIBTORCH: '' });
    expect(result.error).toMatch(/finetorch_preload\.node is missing beside it/);
    fs.rmSync(pkg, { recursive: true });
  });
});
