// Judges the facts: one finding per area, a fix for each problem. 'problem' makes `finetorch
// doctor` exit 1 (finetorch will not run, or runs far slower than it should); 'warn' is worth a
// look but may be deliberate; 'info' and 'ok' only report.
import * as path from 'path';
import { BLAS_NAMES } from './libraries';
import type { DoctorFacts } from './facts';

export type FindingStatus = 'ok' | 'info' | 'warn' | 'problem';

export interface Finding {
  area: string;
  status: FindingStatus;
  detail: string;
  fix?: string;
}

const MiB = 1024 * 1024;

function gib(bytes: number): string {
  return `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
}

function size(bytes: number): string {
  return bytes >= MiB ? `${(bytes / MiB).toFixed(1)} MiB` : `${bytes} B`;
}

function loaderFix(error: string): string {
  const fixes = [...new Set(error.split('\n').map((l) => /^\s*fix: (.*)$/.exec(l)?.[1]).filter((f): f is string => !!f))];
  return fixes.length > 0 ? fixes.join('; ') : "run 'bash scripts/setup.sh' (installs Debian's libtorch-dev and builds the addon), or set LIBTORCH=/path/to/libtorch and run 'npm run build:native'";
}

function libtorch(f: DoctorFacts): Finding[] {
  if (!f.runtime) {
    const lines = (f.addon.error ?? 'unknown error').split('\n');
    const end = lines.findIndex((l) => l.startsWith('Possible solutions'));
    const first = lines.slice(0, Math.min(end < 0 ? lines.length : end, 8)).join('\n');
    return [{ area: 'libtorch', status: 'problem', detail: `the finetorch addon (and so libtorch) did not load:\n${first}`, fix: loaderFix(f.addon.error ?? '') }];
  }
  const { torchVersion, mkldnnAvailable, parallelInfo } = f.runtime;
  const where = f.libtorch.dir ?? 'an unknown folder (no libtorch_cpu in /proc/self/maps)';
  const oneDnn = /MKL-DNN v([\d.]+)/.exec(parallelInfo)?.[1];
  const backend = /ATen parallel backend: (\S+)/.exec(parallelInfo)?.[1];
  const out: Finding[] = [{
    area: 'libtorch',
    status: 'ok',
    detail: `${torchVersion} at ${where}${f.libtorch.fileVersion ? ` (libtorch_cpu.so.${f.libtorch.fileVersion})` : ''}; ` +
      `oneDNN ${mkldnnAvailable ? (oneDnn ?? 'yes') : 'no'}; parallel backend ${backend ?? 'unknown'}; addon ${f.addon.file ?? 'unknown'}` +
      (f.addon.foundBy ? `, libtorch found through ${f.addon.foundBy}` : ''),
  }];
  if (f.libtorch.otherDirs.length > 0) {
    out.push({
      area: 'libtorch',
      status: 'problem',
      detail: `two libtorch copies are loaded in one process: ${[f.libtorch.dir, ...f.libtorch.otherDirs].join(' and ')}`,
      fix: 'load only one: another addon or LD_PRELOAD brought in a second libtorch; rebuild finetorch against the same LIBTORCH, or remove the other',
    });
  }
  if (f.libtorch.fileVersion && !f.libtorch.fileVersion.startsWith(torchVersion.split('+')[0].split('.').slice(0, 2).join('.'))) {
    out.push({ area: 'libtorch', status: 'warn', detail: `libtorch reports ${torchVersion} but its file is libtorch_cpu.so.${f.libtorch.fileVersion}`, fix: 'rebuild the addon against the libtorch you mean to use: npm run build:native' });
  }
  return out;
}

function blasThreadsVariable(f: DoctorFacts): [string, string] | undefined {
  const order: Record<string, string[]> = {
    openblas: ['OPENBLAS_NUM_THREADS', 'GOTO_NUM_THREADS', 'OMP_NUM_THREADS'],
    blis: ['BLIS_NUM_THREADS', 'OMP_NUM_THREADS'],
    mkl: ['MKL_NUM_THREADS', 'OMP_NUM_THREADS'],
  };
  const name = (order[f.blas.kind] ?? []).find((n) => f.env[n] !== undefined);
  return name ? [name, f.env[name]] : undefined;
}

function blas(f: DoctorFacts): Finding[] {
  if (!f.runtime) return [];
  const b = f.blas;
  const speed = b.gflops !== undefined ? `; float32 512×512 matmul ${b.gflops.toFixed(1)} GFLOP/s` : '';
  const name = `${BLAS_NAMES[b.kind]}${b.version ? ` ${b.version}` : ''}`;
  const coretype = b.kind === 'openblas' && f.env.OPENBLAS_CORETYPE !== undefined ? `; kernels for OPENBLAS_CORETYPE=${f.env.OPENBLAS_CORETYPE}, not detected` : '';
  const detail = `${name}${b.file ? ` at ${b.file}` : ''} (${b.reason})${speed}${coretype}`;
  const out: Finding[] = [];
  if (b.kind === 'reference') {
    const dir = path.posix.dirname(b.file ?? '');
    const libDir = path.posix.dirname(dir);
    const triplet = path.posix.basename(libDir);
    const inPath = (f.env.LD_LIBRARY_PATH ?? '').split(':').some((p) => p.replace(/\/+$/, '') === dir);
    let fix: string;
    if (b.reason.includes('LD_PRELOAD')) fix = `take the reference BLAS out of LD_PRELOAD (now '${f.env.LD_PRELOAD ?? ''}'): its sgemm replaces OpenBLAS's`;
    else if (inPath) fix = `remove ${dir} from LD_LIBRARY_PATH (it puts the reference libblas.so.3 before OpenBLAS)`;
    else {
      fix = 'install OpenBLAS and make it the libblas.so.3 alternative (as root): apt-get install libopenblas0-pthread && ' +
        `update-alternatives --set libblas.so.3-${triplet} ${libDir}/openblas-pthread/libblas.so.3`;
    }
    out.push({ area: 'BLAS', status: 'problem', detail: `${detail}: matrix products (AlexNet's and VGG's FC layers) run ~2.5× slower than with OpenBLAS`, fix });
  } else if (b.kind === 'unknown' || b.kind === 'atlas' || b.kind === 'flexiblas') {
    out.push({ area: 'BLAS', status: 'warn', detail, fix: 'use OpenBLAS for libtorch (Debian/Ubuntu, as root: apt-get install libopenblas0-pthread); compare the GFLOP/s figure after' });
  } else {
    out.push({ area: 'BLAS', status: 'ok', detail });
  }
  const threads = blasThreadsVariable(f);
  if (threads && Number(threads[1]) === 1 && f.cores.usable > 1) {
    out.push({ area: 'BLAS', status: 'warn', detail: `${threads[0]}=1: ${BLAS_NAMES[f.blas.kind]} multiplies matrices on one of ${f.cores.usable} cores`, fix: `unset ${threads[0]} (unless several processes share the cores on purpose)` });
  }
  return out;
}

function threads(f: DoctorFacts): Finding[] {
  const { usable, online, affinity, cgroupLimit } = f.cores;
  const cores = `${usable} usable core${usable === 1 ? '' : 's'} (${online} online${affinity < online ? `, ${affinity} in this process's affinity mask` : ''}${cgroupLimit !== undefined ? `, cgroup quota ${cgroupLimit}` : ''})`;
  const out: Finding[] = [];
  const fixTo = (n: number) => `set 'threads: ${n}' in the experiment config (finetorch train --set threads=${n}) or call setNumThreads(${n})`;
  if (f.runtime) {
    const t = f.runtime.threads;
    const pools = f.runtime.threadPools.settings.map((s) => `${s.name}=${s.value ?? 'unset'} (${s.source})`).join(', ');
    const detail = `${t} intra-op thread${t === 1 ? '' : 's'}, ${cores}; ${pools}`;
    if (t === 1 && usable > 1) out.push({ area: 'threads', status: 'problem', detail: `${detail}: libtorch computes on one core`, fix: fixTo(usable) });
    else if (t > usable) out.push({ area: 'threads', status: 'problem', detail: `${detail}: more threads than cores, so they take turns (much slower)`, fix: fixTo(usable) });
    else out.push({ area: 'threads', status: 'ok', detail });
    const early = f.runtime.threadPools.loadedEarlier;
    if (early.length > 0) {
      out.push({ area: 'threads', status: 'warn', detail: `${early.join(', ')} were loaded before finetorch, so their spin settings are their defaults`, fix: 'load finetorch before the other addon, or set GOMP_SPINCOUNT=20000 OPENBLAS_THREAD_TIMEOUT=4 in the environment' });
    }
  } else {
    out.push({ area: 'threads', status: 'info', detail: cores });
  }
  const configured = f.config.threads;
  if (typeof configured === 'number' && configured > usable) {
    out.push({ area: 'threads', status: 'problem', detail: `${f.config.file} asks for threads: ${configured} but only ${usable} cores are usable`, fix: `set threads: ${usable} (or null: all cores) in ${f.config.file}` });
  }
  return out;
}

function cpu(f: DoctorFacts): Finding[] {
  if (f.cpu.flags.length === 0) return [{ area: 'CPU', status: 'info', detail: 'no flags in /proc/cpuinfo (not Linux, or not x86)' }];
  const present = f.cpu.features.filter((x) => x.present).map((x) => x.name);
  const absent = f.cpu.features.filter((x) => !x.present).map((x) => x.name);
  const detail = `${f.cpu.model ?? 'unknown model'}: ${present.join(', ') || 'none of the tracked extensions'}${absent.length ? `; absent: ${absent.join(', ')}` : ''}`;
  const out: Finding[] = [{ area: 'CPU', status: present.includes('avx2') ? 'ok' : 'warn', detail, ...(present.includes('avx2') ? {} : { fix: "no AVX2: libtorch runs its slow generic kernels; use a machine with AVX2 (Haswell or Zen and later)" }) }];
  const capability = f.env.ATEN_CPU_CAPABILITY;
  if (capability !== undefined) {
    out.push({ area: 'CPU', status: capability === 'default' ? 'warn' : 'info', detail: `ATEN_CPU_CAPABILITY=${capability} limits libtorch's kernels to that instruction set`, fix: 'unset ATEN_CPU_CAPABILITY to let libtorch pick the best the CPU has' });
  }
  return out;
}

function cuda(f: DoctorFacts): Finding[] {
  const libs = [f.cuda.cudart, f.cuda.cudnn, f.cuda.cublas].filter((x): x is string => !!x).map((x) => path.posix.basename(x));
  const nccl = f.cuda.nccl ? `NCCL ${path.posix.basename(f.cuda.nccl)}` : 'NCCL not loaded (not reported by this libtorch build)';
  const out: Finding[] = [];
  const wanted = f.config.device?.startsWith('cuda') ? f.config.device : undefined;
  if (f.runtime?.cudaAvailable) {
    const { cudaDeviceCount, cudnnAvailable } = f.runtime;
    out.push({ area: 'CUDA', status: cudnnAvailable ? 'ok' : 'warn', detail: `${cudaDeviceCount} device(s); cuDNN ${cudnnAvailable ? 'available' : 'NOT available'}; ${nccl}${libs.length ? `; ${libs.join(', ')}` : ''}`, ...(cudnnAvailable ? {} : { fix: 'install the cuDNN that matches your libtorch (convolutions fall back to slow native kernels)' }) });
    const index = wanted?.includes(':') ? Number(wanted.split(':')[1]) : 0;
    if (wanted && index >= cudaDeviceCount) out.push({ area: 'CUDA', status: 'problem', detail: `${f.config.file} asks for device ${wanted} but ${cudaDeviceCount} device(s) are visible`, fix: `use device cuda:0..cuda:${cudaDeviceCount - 1}, or check CUDA_VISIBLE_DEVICES` });
    return out;
  }
  if (!f.runtime) return [{ area: 'CUDA', status: 'info', detail: 'unknown: libtorch did not load' }];
  const cudaBuild = f.libtorch.files.some((x) => /libtorch_cuda/.test(x));
  const gpus = f.cuda.gpuDeviceFiles;
  if (gpus.length > 0 && !cudaBuild) {
    out.push({ area: 'CUDA', status: 'warn', detail: `${gpus.length} NVIDIA device(s) (${gpus.join(', ')}) but this libtorch is CPU-only; ${nccl}`, fix: 'build against a CUDA libtorch from pytorch.org: LIBTORCH=/path/to/libtorch npm run build:native' });
  } else if (cudaBuild) {
    out.push({ area: 'CUDA', status: 'warn', detail: `a CUDA libtorch but no GPU visible (${gpus.length ? gpus.join(', ') : 'no /dev/nvidia*'}; CUDA_VISIBLE_DEVICES=${f.env.CUDA_VISIBLE_DEVICES ?? 'unset'}); ${nccl}`, fix: 'check the NVIDIA driver (nvidia-smi) and CUDA_VISIBLE_DEVICES' });
  } else {
    out.push({ area: 'CUDA', status: 'ok', detail: `not available: CPU-only libtorch${gpus.length ? '' : ', no NVIDIA device'}; cuDNN no; ${nccl}` });
  }
  if (wanted) {
    out.push({ area: 'CUDA', status: 'problem', detail: `${f.config.file} asks for device ${wanted} but CUDA is not available`, fix: `set device: auto (or cpu) in ${f.config.file}, or build against a CUDA libtorch (LIBTORCH=... npm run build:native) on a GPU machine` });
  }
  return out;
}

function distributed(f: DoctorFacts): Finding[] {
  const d = f.distributed;
  if (!d) return [{ area: 'distributed', status: 'info', detail: 'unknown: libtorch did not load' }];
  if (!d.c10d) {
    return [{
      area: 'distributed', status: 'warn', detail: 'this build has no c10d (gloo\'s headers were missing when it was built): --nproc-per-node, torchrun and srun runs fail at start',
      fix: 'apt-get install libgloo-dev (or put gloo\'s headers beside your libtorch), then npm run build:native',
    }];
  }
  const how = d.gradientSync === 'reducer' ? "gradients by DDP's Reducer (all-reduce during backward)" : 'gradients in flat buckets after backward (this libtorch\'s Reducer is not driven from C++)';
  return [{ area: 'distributed', status: 'ok', detail: `c10d with ${d.backends.join(', ')}; ${how}` }];
}

// Winograd training convolutions (conv_algorithm auto): info, not a warning, where missing (the
// direct convolutions work), with the fix where the build rather than the CPU lacks them.
function convolutions(f: DoctorFacts): Finding[] {
  const w = f.runtime?.winograd;
  if (!w) return [];
  if (w.available) return [{ area: 'convolutions', status: 'ok', detail: "oneDNN's Winograd for ResNet training convolutions (conv_algorithm auto uses it)" }];
  const buildLacks = /this build/.test(w.reason);
  return [{
    area: 'convolutions', status: 'info', detail: `direct convolutions only: ${w.reason}`,
    ...(buildLacks && f.libtorch.dir?.startsWith('/usr/lib') ? { fix: 'apt-get install libdnnl-dev, then npm run build:native' } : {}),
  }];
}

function malloc(f: DoctorFacts): Finding[] {
  const out: Finding[] = [];
  const e = f.env;
  if (!f.runtime) {
    out.push({ area: 'malloc', status: 'info', detail: `${f.allocator ? f.allocator.kind : 'glibc'}; finetorch tunes glibc's when the addon loads` });
  } else if (f.allocator) {
    out.push({ area: 'malloc', status: 'ok', detail: `${f.allocator.kind} (${f.allocator.file}) replaces glibc malloc; finetorch's glibc tuning does not apply` });
  } else if (e.FINETORCH_MALLOC_TUNING === '0') {
    out.push({ area: 'malloc', status: 'warn', detail: 'glibc malloc untuned (FINETORCH_MALLOC_TUNING=0): every step maps and page-faults its large buffers again (a fine-tuning epoch took 25.1 s instead of 5.05 s)', fix: 'unset FINETORCH_MALLOC_TUNING' });
  } else {
    // mirrors native/addon.cc tuneMalloc()
    const arena = e.MALLOC_ARENA_MAX !== undefined ? `MALLOC_ARENA_MAX=${e.MALLOC_ARENA_MAX} (yours)` : 'one arena (finetorch)';
    const tunables = e.GLIBC_TUNABLES?.includes('malloc.');
    const thresholds = tunables ? `GLIBC_TUNABLES=${e.GLIBC_TUNABLES} (yours)` : 'mmap and trim thresholds 32 MiB (finetorch)';
    out.push({ area: 'malloc', status: 'ok', detail: `glibc, tuned: ${arena}, ${thresholds}` });
  }
  const c = f.cpuCache;
  if (!c) return out;
  if (!c.installed) {
    out.push({ area: 'CPU block cache', status: 'warn', detail: `off${e.FINETORCH_CPU_CACHE === '0' ? ' (FINETORCH_CPU_CACHE=0)' : ''}: training steps page-fault their activations (ResNet-18 train 29-30 → 23-24 img/s on 2 cores)`, fix: 'unset FINETORCH_CPU_CACHE' });
  } else {
    const limit = e.FINETORCH_CPU_CACHE_MB !== undefined ? `FINETORCH_CPU_CACHE_MB=${e.FINETORCH_CPU_CACHE_MB}` : 'a quarter of RAM';
    out.push({ area: 'CPU block cache', status: 'ok', detail: `on: keeps freed blocks of 1 MiB and more, up to ${gib(c.limitBytes)} (${limit})` });
  }
  return out;
}

function sharp(f: DoctorFacts): Finding[] {
  if (f.sharp.error) return [{ area: 'sharp', status: 'problem', detail: `sharp does not load (finetorch decodes images with it): ${f.sharp.error}`, fix: 'npm ci (or npm rebuild sharp) in the project, with network access for its prebuilt libvips' }];
  return [{ area: 'sharp', status: 'ok', detail: `sharp ${f.sharp.sharp}, libvips ${f.sharp.vips}` }];
}

function weights(f: DoctorFacts): Finding[] {
  const w = f.weights;
  const present = w.files.filter((x) => x.present);
  const listed = present.map((x) => `${x.file} ${size(x.bytes ?? 0)}${x.hashMatches === true ? ' sha256 ok' : ''}`);
  const missing = w.files.filter((x) => !x.present).map((x) => x.arch);
  const parts = [`${w.dir}: ${listed.length ? listed.join(', ') : 'no torchvision weights yet'}`];
  if (missing.length) parts.push(`not downloaded: ${missing.join(', ')} (finetorch weights download <arch>, or fetched on first use)`);
  if (w.partial.length) parts.push(`unfinished downloads: ${w.partial.join(', ')} (finetorch weights download resumes them)`);
  if (w.other.length) parts.push(`other files: ${w.other.join(', ')}`);
  const out: Finding[] = [{ area: 'weights', status: present.length ? 'ok' : 'info', detail: parts.join('; ') }];
  for (const bad of present.filter((x) => x.hashMatches === false)) {
    out.push({ area: 'weights', status: 'problem', detail: `${path.join(w.dir, bad.file)} is corrupt: its sha256 does not start with ${/-([a-f0-9]+)\./.exec(bad.file)?.[1]}`, fix: `rm ${path.join(w.dir, bad.file)} && finetorch weights download ${bad.arch}` });
  }
  return out;
}

function config(f: DoctorFacts): Finding[] {
  if (!f.config.error) return [];
  return [{ area: 'config', status: 'problem', detail: `${f.config.file}: ${f.config.error}`, fix: 'correct the configuration file (finetorch train --help lists the keys)' }];
}

function environment(f: DoctorFacts): Finding[] {
  const set = Object.entries(f.env).map(([k, v]) => `${k}=${v}`);
  return [{ area: 'environment', status: 'info', detail: set.length ? set.join(' ') : 'none of the variables that steer libtorch, its thread pools, BLAS or malloc is set' }];
}

/** Every finding, in the order they are printed. */
export function diagnose(facts: DoctorFacts): Finding[] {
  return [
    { area: 'node', status: 'ok', detail: `${facts.node} on ${facts.platform}` },
    ...environment(facts),
    ...libtorch(facts), ...blas(facts), ...threads(facts), ...cpu(facts), ...cuda(facts), ...distributed(facts), ...convolutions(facts), ...malloc(facts), ...sharp(facts), ...weights(facts), ...config(facts),
  ];
}
