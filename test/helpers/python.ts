// Runs reference computations in Debian's system Python, whose python3-torch (1.13) is the
// reference the TS code is compared with. The pyenv `python3` first on PATH has no torch, so the
// interpreter is named by path rather than looked up.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export const TORCH_PYTHON = '/usr/bin/python3';
// A hang bound, not a speed claim: importing torch and writing the parity fixtures has taken minutes
// on a loaded 2-core machine. The same 10 minutes as Jest's per-test limit.
const TIMEOUT_MS = 600_000;

let probed: { python: string | null; reason: string | null } | undefined;

function pythonEnv(): NodeJS.ProcessEnv {
  // PYTHONHOME/PYTHONPATH set up for another interpreter would break or shadow the system one.
  const { PYTHONHOME: _home, PYTHONPATH: _path, ...env } = process.env;
  return env;
}

function probe(): { python: string | null; reason: string | null } {
  if (!existsSync(TORCH_PYTHON)) return { python: null, reason: `${TORCH_PYTHON} does not exist` };
  const result = spawnSync(TORCH_PYTHON, ['-c', 'import torch'], {
    encoding: 'utf8',
    timeout: TIMEOUT_MS,
    env: pythonEnv(),
  });
  if (result.error) return { python: null, reason: `${TORCH_PYTHON} could not run: ${result.error.message}` };
  if (result.status !== 0) {
    const why = result.stderr.trim().split('\n').pop() ?? `exit status ${result.status}`;
    return { python: null, reason: `${TORCH_PYTHON} cannot import torch (${why})` };
  }
  return { python: TORCH_PYTHON, reason: null };
}

/** The Python that can `import torch`, or null; probed once per test file and cached. */
export function findTorchPython(): string | null {
  probed ??= probe();
  return probed.python;
}

/** Why findTorchPython() returned null (for skip messages), or null when torch is available. */
export function torchPythonUnavailableReason(): string | null {
  findTorchPython();
  return probed!.reason;
}

/**
 * Runs `script` (fed on stdin, so its length is not limited by the command line) with the torch
 * Python, `args` landing in sys.argv[1:]. Returns stdout; throws with stderr when it fails.
 */
export function runPython(script: string, args: string[] = []): string {
  const python = findTorchPython();
  if (!python) throw new Error(`No Python with torch: ${torchPythonUnavailableReason()}`);
  const result = spawnSync(python, ['-', ...args], {
    input: script,
    encoding: 'utf8',
    timeout: TIMEOUT_MS,
    maxBuffer: 256 * 1024 * 1024,
    env: pythonEnv(),
  });
  if (result.error) throw new Error(`${python} failed to run: ${result.error.message}\n${result.stderr ?? ''}`);
  if (result.signal) throw new Error(`${python} was killed by ${result.signal}\n${result.stderr}`);
  if (result.status !== 0) throw new Error(`${python} exited with status ${result.status}\n${result.stderr}`);
  return result.stdout;
}
