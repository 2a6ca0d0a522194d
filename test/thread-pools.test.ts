import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { THREAD_POOL_DEFAULTS } from '../binding';
import { applyThreadPoolDefaults, loadedPoolLibraries } from '../binding/thread-pools';
import { runtimeInfo } from '../lib';
import { builtCliProblem, ROOT } from './helpers/cli-process';
import { prerequisite } from './helpers/prerequisite';

const built = prerequisite('dist/ compiled from the current sources', builtCliProblem());

describe('thread-pool spin settings', () => {
  test('fills only the variables the user left unset, and says which are whose', () => {
    const env: NodeJS.ProcessEnv = { GOMP_SPINCOUNT: '300000' };
    const applied = applyThreadPoolDefaults(env);
    expect(env.GOMP_SPINCOUNT).toBe('300000');
    expect(env.OPENBLAS_THREAD_TIMEOUT).toBe(THREAD_POOL_DEFAULTS.OPENBLAS_THREAD_TIMEOUT);
    expect(applied.settings).toEqual([
      { name: 'GOMP_SPINCOUNT', value: '300000', source: 'environment' },
      { name: 'OPENBLAS_THREAD_TIMEOUT', value: '4', source: 'finetorch' },
    ]);
  });

  test('names the pool libraries a process had mapped before libtorch was loaded', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-maps-'));
    const maps = path.join(dir, 'maps');
    fs.writeFileSync(maps, [
      '7f0000000000-7f0000001000 r-xp 00000000 08:01 1 /usr/lib/x86_64-linux-gnu/libgomp.so.1.0.0',
      '7f0000002000-7f0000003000 r-xp 00000000 08:01 2 /usr/lib/x86_64-linux-gnu/libc.so.6',
    ].join('\n'));
    expect(loadedPoolLibraries(maps)).toEqual(['libgomp']);
    fs.writeFileSync(maps, '7f0000000000-7f0000001000 r-xp 00000000 08:01 3 /usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0\n');
    expect(loadedPoolLibraries(maps)).toEqual(['libopenblas']);
    expect(loadedPoolLibraries(path.join(dir, 'absent'))).toEqual([]);
    fs.rmSync(dir, { recursive: true });
  });

  test('runtimeInfo reports the settings in force in this process', () => {
    const { threadPools } = runtimeInfo();
    expect(threadPools.settings.map((s) => s.name)).toEqual(Object.keys(THREAD_POOL_DEFAULTS));
    for (const s of threadPools.settings) expect(process.env[s.name]).toBe(s.value);
  });

  // A fresh process, as a user's program starts: the variables must be in the environment before
  // libgomp and OpenBLAS are mapped (both read them once, when loaded), and a user's value wins.
  const child = (env: NodeJS.ProcessEnv) => {
    const script = `
      const maps = () => require('fs').readFileSync('/proc/self/maps', 'utf8');
      const before = /libgomp/.test(maps());
      const binding = require(${JSON.stringify(path.join(ROOT, 'dist', 'binding', 'index.js'))});
      binding.native();
      console.log(JSON.stringify({ before, after: /libgomp/.test(maps()), pools: binding.threadPoolSettings(),
        spin: process.env.GOMP_SPINCOUNT, timeout: process.env.OPENBLAS_THREAD_TIMEOUT }));`;
    const clean = { ...process.env };
    for (const name of Object.keys(THREAD_POOL_DEFAULTS)) delete clean[name];
    const run = spawnSync(process.execPath, ['-e', script], { env: { ...clean, ...env }, encoding: 'utf8', timeout: 300_000 }); // a hang bound
    if (run.status !== 0) throw new Error(`the child failed (status ${run.status}):\n${run.stderr}`);
    return JSON.parse(run.stdout);
  };

  built.test('a fresh process sets them before libtorch (and so libgomp) is loaded', () => {
    const out = child({});
    expect(out.before).toBe(false);
    expect(out.after).toBe(true);
    expect(out.pools.loadedEarlier).toEqual([]);
    expect(out.spin).toBe(THREAD_POOL_DEFAULTS.GOMP_SPINCOUNT);
    expect(out.timeout).toBe(THREAD_POOL_DEFAULTS.OPENBLAS_THREAD_TIMEOUT);
    expect(out.pools.settings.every((s: { source: string }) => s.source === 'finetorch')).toBe(true);
  });

  built.test("a fresh process keeps the user's own values", () => {
    const out = child({ GOMP_SPINCOUNT: '300000', OPENBLAS_THREAD_TIMEOUT: '28' });
    expect(out.spin).toBe('300000');
    expect(out.timeout).toBe('28');
    expect(out.pools.settings).toEqual([
      { name: 'GOMP_SPINCOUNT', value: '300000', source: 'environment' },
      { name: 'OPENBLAS_THREAD_TIMEOUT', value: '28', source: 'environment' },
    ]);
  });
});
