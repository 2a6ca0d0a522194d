// Finding libtorch at load time, so that one prebuilt addon does not depend on the folder libtorch
// was in when it was built. A prebuilt is named for the libtorch version it was built against
// (finetorch.libtorch-1.13.node). The loader lists the libtorch installations it can see
// (LIBTORCH, a Python's torch, the system), takes the first whose version matches, and opens that
// installation's libc10/libtorch_cpu/libtorch with RTLD_GLOBAL before the addon: the dynamic linker
// then resolves the addon's NEEDED entries to those already-open libraries (it matches sonames of
// loaded objects before it searches any path), whatever RPATH or ld.so.cache would have said.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

export type LibtorchSource = 'LIBTORCH' | 'python torch' | 'system';

export interface LibtorchInstallation {
  source: LibtorchSource;
  /** The folder holding libtorch_cpu.so*. */
  libDir: string;
  /** The full version ('1.13.0', '2.5.1+cu124'), or null when nothing in the folder says it. */
  version: string | null;
}

/** major.minor of a version string ('2.5.1+cpu' -> '2.5'), or null. */
export function majorMinor(version: string | null): string | null {
  const m = version ? /^(\d+)\.(\d+)/.exec(version) : null;
  return m ? `${m[1]}.${m[2]}` : null;
}

/** The libtorch version a prebuilt was built for, from its name (finetorch.libtorch-1.13.node). */
export function prebuiltLibtorchVersion(file: string): string | null {
  const m = /\.libtorch-(\d+\.\d+)\.node$/.exec(path.basename(file));
  return m ? m[1] : null;
}

export interface ElfDynamic {
  /** DT_NEEDED: the sonames it needs. */
  needed: string[];
  /** DT_SONAME: the name the dynamic linker knows it by once loaded, or null. */
  soname: string | null;
}

/** DT_NEEDED and DT_SONAME of a 64-bit little-endian ELF file. */
export function elfDynamic(file: string): ElfDynamic {
  const buf = fs.readFileSync(file);
  if (buf.length < 64 || buf.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${file}: not an ELF file`);
  if (buf[4] !== 2 || buf[5] !== 1) throw new Error(`${file}: not a 64-bit little-endian ELF file`);
  const phoff = Number(buf.readBigUInt64LE(0x20));
  const phentsize = buf.readUInt16LE(0x36);
  const phnum = buf.readUInt16LE(0x38);
  const loads: Array<{ vaddr: number; offset: number; filesz: number }> = [];
  let dynamic: { offset: number; size: number } | undefined;
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    const type = buf.readUInt32LE(at);
    const offset = Number(buf.readBigUInt64LE(at + 8));
    const vaddr = Number(buf.readBigUInt64LE(at + 16));
    const filesz = Number(buf.readBigUInt64LE(at + 32));
    if (type === 1) loads.push({ vaddr, offset, filesz }); // PT_LOAD
    if (type === 2) dynamic = { offset, size: filesz }; // PT_DYNAMIC
  }
  if (!dynamic) return { needed: [], soname: null };
  const needed: number[] = [];
  let soname = -1;
  let strtab = -1;
  for (let at = dynamic.offset; at + 16 <= dynamic.offset + dynamic.size; at += 16) {
    const tag = Number(buf.readBigInt64LE(at));
    const value = Number(buf.readBigUInt64LE(at + 8));
    if (tag === 0) break; // DT_NULL
    if (tag === 1) needed.push(value); // DT_NEEDED: an offset into the string table
    if (tag === 5) strtab = value; // DT_STRTAB: a virtual address
    if (tag === 14) soname = value; // DT_SONAME: an offset into the string table
  }
  const segment = loads.find((l) => strtab >= l.vaddr && strtab < l.vaddr + l.filesz);
  if (!segment) throw new Error(`${file}: its string table is outside every loaded segment`);
  const strtabOffset = segment.offset + (strtab - segment.vaddr);
  const text = (n: number) => buf.toString('latin1', strtabOffset + n, buf.indexOf(0, strtabOffset + n));
  return { needed: needed.map(text), soname: soname >= 0 ? text(soname) : null };
}

const TORCH_FAMILY = /^lib(c10|torch|shm|caffe2)/;

/** The libtorch libraries an addon needs, in the order they must be opened (dependencies first). */
export function libtorchLibrariesNeeded(addonFile: string): string[] {
  const rank = (name: string): number => {
    if (/^libc10\.so/.test(name)) return 0;
    if (/^libc10_/.test(name)) return 1;
    if (/^libtorch_cpu\.so/.test(name)) return 2;
    if (/^libtorch_(cuda|hip)/.test(name)) return 3;
    if (/^libtorch\.so/.test(name)) return 4;
    return 5;
  };
  return elfDynamic(addonFile).needed
    .filter((n) => TORCH_FAMILY.test(n))
    .sort((a, b) => rank(a) - rank(b));
}

function readText(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

/** What the folder says its version is: build-version (official zips), TorchConfigVersion.cmake, version.py, a versioned soname. */
export function libtorchVersion(prefix: string, libDir: string): string | null {
  const buildVersion = readText(path.join(prefix, 'build-version'))?.trim();
  if (buildVersion) return buildVersion;
  for (const cmake of [path.join(prefix, 'share', 'cmake', 'Torch'), path.join(libDir, 'cmake', 'Torch')]) {
    const m = /set\(PACKAGE_VERSION "([^"]+)"\)/.exec(readText(path.join(cmake, 'TorchConfigVersion.cmake')) ?? '');
    if (m) return m[1];
  }
  const py = /__version__\s*=\s*'([^']+)'/.exec(readText(path.join(prefix, 'version.py')) ?? '');
  if (py) return py[1];
  let names: string[] = [];
  try {
    names = fs.readdirSync(libDir);
  } catch {
    return null;
  }
  const versioned = names.map((n) => /^libtorch_cpu\.so\.(\d+\.\d+(?:\.\d+)?)$/.exec(n)?.[1]).find(Boolean);
  return versioned ?? null;
}

function hasLibtorch(libDir: string): boolean {
  try {
    return fs.readdirSync(libDir).some((n) => /^libtorch_cpu\.so/.test(n));
  } catch {
    return false;
  }
}

/** LIBTORCH may name the unpacked libtorch (holding lib/) or its lib/ folder itself. */
function fromLibtorchEnv(value: string): LibtorchInstallation {
  const prefix = path.resolve(value);
  const libDir = hasLibtorch(path.join(prefix, 'lib')) ? path.join(prefix, 'lib') : prefix;
  const parent = libDir === prefix ? path.dirname(prefix) : prefix;
  return { source: 'LIBTORCH', libDir, version: libtorchVersion(parent, libDir) };
}

/** A Python's torch package folder, found without importing torch (which takes seconds). */
function pythonTorch(env: NodeJS.ProcessEnv): LibtorchInstallation | null {
  const script = "import importlib.util as u; s = u.find_spec('torch'); print(s.submodule_search_locations[0] if s and s.submodule_search_locations else '')";
  for (const python of [env.FINETORCH_PYTHON, 'python3', 'python'].filter((p): p is string => !!p)) {
    const run = spawnSync(python, ['-c', script], { encoding: 'utf8', timeout: 10_000, env });
    const torchDir = run.status === 0 ? run.stdout.trim() : '';
    if (!torchDir) continue;
    const libDir = path.join(torchDir, 'lib');
    if (hasLibtorch(libDir)) return { source: 'python torch', libDir, version: libtorchVersion(torchDir, libDir) };
  }
  return null;
}

function systemLibDirs(env: NodeJS.ProcessEnv): string[] {
  const multiarch = { x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu' }[process.arch as string];
  return [
    ...(env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean),
    ...(multiarch ? [`/usr/lib/${multiarch}`, `/usr/local/lib/${multiarch}`] : []),
    '/usr/local/lib',
    '/usr/lib64',
    '/usr/lib',
  ];
}

/** Every libtorch this process could use, in the order they are preferred. */
export function findLibtorchInstallations(env: NodeJS.ProcessEnv = process.env): LibtorchInstallation[] {
  const found: LibtorchInstallation[] = [];
  if (env.LIBTORCH) {
    // an explicit choice is the only candidate: never fall back silently to another libtorch
    return [fromLibtorchEnv(env.LIBTORCH)];
  }
  const py = pythonTorch(env);
  if (py) found.push(py);
  for (const dir of systemLibDirs(env)) {
    if (hasLibtorch(dir) && !found.some((f) => fs.realpathSync(f.libDir) === fs.realpathSync(dir))) {
      found.push({ source: 'system', libDir: dir, version: libtorchVersion(path.dirname(dir), dir) });
    }
  }
  return found;
}

export function describeInstallation(i: LibtorchInstallation): string {
  return `libtorch ${i.version ?? '(version unknown)'} at ${i.libDir} (${i.source === 'LIBTORCH' ? 'LIBTORCH' : i.source})`;
}

export interface Preloader {
  preload(file: string): void;
}

/**
 * The files of `installation` that provide each libtorch library `addonFile` needs, dependencies
 * first: the file named by the soname, else the unversioned name (pip torch and Debian's Python
 * torch ship libc10.so) when its own soname is the one needed. Throws, opening nothing, when one is
 * missing: a half-opened libtorch would mix two installations.
 */
export function libtorchFiles(addonFile: string, installation: LibtorchInstallation): string[] {
  return libtorchLibrariesNeeded(addonFile).map((soname) => {
    const exact = path.join(installation.libDir, soname);
    if (fs.existsSync(exact)) return exact;
    const unversioned = path.join(installation.libDir, soname.replace(/(\.so)\..*$/, '$1'));
    if (fs.existsSync(unversioned) && elfDynamic(unversioned).soname === soname) return unversioned;
    throw new Error(`${describeInstallation(installation)} has no ${soname}, which ${path.basename(addonFile)} needs`);
  });
}

/**
 * Opens `files` (libtorchFiles of `installation`) in order with RTLD_GLOBAL; a library that will
 * not open is named with the dynamic linker's reason and the way out.
 */
export function openLibtorch(files: string[], installation: LibtorchInstallation, preloader: Preloader): void {
  for (const file of files) {
    try {
      preloader.preload(file);
    } catch (error) {
      throw Object.assign(new Error(`opening ${file} of ${describeInstallation(installation)}: ${(error as Error).message}`), {
        fix: `that libtorch is damaged or unusable here: reinstall it, or point LIBTORCH at another libtorch ${majorMinor(installation.version) ?? ''}`.trimEnd(),
      });
    }
  }
}

/** Where the libtorch_cpu mapped into this process comes from (after the addon loaded), from /proc/self/maps. */
export function loadedLibtorchFile(maps: string | null = readText('/proc/self/maps')): string | null {
  for (const line of (maps ?? '').split('\n')) {
    const file = line.trim().split(/\s+/).slice(5).join(' ');
    if (/\/libtorch_cpu\.so[^/]*$/.test(file)) return file;
  }
  return null;
}
