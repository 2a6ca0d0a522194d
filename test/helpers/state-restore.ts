// Jest runs every test file in one process (maxWorkers 1), so the native addon, and the process-wide
// settings it holds, are shared by all of them: the intra-op thread count, the TF32 flags and the
// CPU generator's state. A file that changes one (train() sets the thread count from its config and
// leaves it so; a test seeds the generator) would change what the files after it run with, and a
// test's result would depend on the order. Registered in jest.config.js (setupFilesAfterEnv), this
// records those settings before each file's own code runs and puts them back after its last test,
// so every file starts from the state the process started with.
//
// A changed thread count or TF32 flag is named on stderr: tests that change one should put it back
// themselves (the generator is seeded by so many tests that restoring it is left to this file).
import type { Tensor } from '../../lib/tensor';

type Runtime = typeof import('../../lib/runtime');

interface Saved {
  runtime: Runtime;
  threads: number;
  tf32: { conv: boolean; matmul: boolean };
  rng: Tensor;
}

function record(): Saved | undefined {
  let runtime: Runtime;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    runtime = require('../../lib/runtime') as Runtime;
    return { runtime, threads: runtime.getNumThreads(), tf32: runtime.allowTF32(), rng: runtime.getRngState() };
  } catch {
    // no addon (not built): the tests that need it fail on their own; the others have nothing to restore
    return undefined;
  }
}

const saved = record();

afterAll(() => {
  if (!saved) return;
  const { runtime, threads, tf32, rng } = saved;
  const changed: string[] = [];
  const nowThreads = runtime.getNumThreads();
  if (nowThreads !== threads) {
    changed.push(`thread count ${threads} -> ${nowThreads}`);
    runtime.setNumThreads(threads);
  }
  const nowTf32 = runtime.allowTF32();
  if (nowTf32.conv !== tf32.conv || nowTf32.matmul !== tf32.matmul) {
    changed.push(`TF32 flags ${JSON.stringify(tf32)} -> ${JSON.stringify(nowTf32)}`);
    runtime.setAllowTF32(tf32);
  }
  runtime.setRngState(rng);
  rng.dispose();
  if (changed.length) {
    const file = expect.getState().testPath ?? 'a test file';
    process.stderr.write(`state-restore: ${file} left the ${changed.join(', ')}; put back for the files after it\n`);
  }
});
