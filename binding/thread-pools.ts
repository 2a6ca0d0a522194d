// How long libtorch's two CPU thread pools spin after their work, set before libtorch loads.
//
// libtorch runs most operators on OpenMP (libgomp) and matrix products on OpenBLAS, whose Debian
// build (libopenblas0-pthread) keeps its own threads. After a parallel region each pool's idle
// threads spin for a while: libgomp 300,000 pause loops (about 6 ms on this EPYC), OpenBLAS 2^28
// cycles. On a machine with as many threads as cores, a GEMM that follows an OpenMP region runs
// on fewer cores until the other pool stops spinning. Measured with PyTorch 1.13 on 2 cores
// (addmm 32x9216 -> 4096): 25 ms as shipped, 18.7 ms with either pool told to sleep sooner; AlexNet
// eval 106 -> 66 ms and train 328 -> 205 ms per batch of 32 at 112² with the values below, ResNet-18
// unchanged within noise. Both libraries read these variables once, when they are loaded, so
// they must be in the environment before the addon is required; a value the user set wins.
import * as fs from 'fs';

/** finetorch's values: libgomp spins ~0.4 ms, OpenBLAS threads sleep at once (2^4 cycles). */
export const THREAD_POOL_DEFAULTS: Readonly<Record<string, string>> = Object.freeze({
  GOMP_SPINCOUNT: '20000',
  OPENBLAS_THREAD_TIMEOUT: '4',
});

export interface ThreadPoolSetting {
  name: string;
  value: string | undefined;
  /** 'finetorch': set by finetorch before loading libtorch; 'environment': the user's own value. */
  source: 'finetorch' | 'environment';
}

export interface ThreadPoolSettings {
  settings: ThreadPoolSetting[];
  /**
   * Libraries that were already in the process before finetorch loaded libtorch (another addon
   * loaded them): their pools kept the values they read then, whatever these settings say.
   */
  loadedEarlier: string[];
}

/** Which of the pools' libraries this process has mapped already (Linux; elsewhere none). */
export function loadedPoolLibraries(mapsFile = '/proc/self/maps'): string[] {
  let maps: string;
  try {
    maps = fs.readFileSync(mapsFile, 'utf8');
  } catch {
    return [];
  }
  return ['libgomp', 'libopenblas'].filter((name) => new RegExp(`/${name}[\\w.-]*\\.so`).test(maps));
}

/** Fills the pools' variables the user left unset; call before the addon is loaded. */
export function applyThreadPoolDefaults(env: NodeJS.ProcessEnv = process.env): ThreadPoolSettings {
  const loadedEarlier = loadedPoolLibraries();
  const settings = Object.entries(THREAD_POOL_DEFAULTS).map(([name, value]): ThreadPoolSetting => {
    if (env[name] !== undefined) return { name, value: env[name], source: 'environment' };
    env[name] = value;
    return { name, value, source: 'finetorch' };
  });
  return { settings, loadedEarlier };
}
