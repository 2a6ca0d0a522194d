// `finetorch doctor` as users run it: on this machine, and with the reference BLAS forced into the
// child process (LD_PRELOAD: the addon's RPATH puts /usr/lib/<triplet> before LD_LIBRARY_PATH).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { DoctorReport } from '../../lib/doctor';
import { builtCliProblem, CLI, expectExit, ROOT, runCli } from '../helpers/cli-process';
import { assertPresent, prerequisite } from '../helpers/prerequisite';

const built = prerequisite('dist/ compiled from the current sources', builtCliProblem());

/** Debian's reference BLAS (package libblas3), installed beside OpenBLAS but not chosen by the alternatives link. */
function referenceBlas(): string | undefined {
  const dirs = fs.existsSync('/usr/lib') ? fs.readdirSync('/usr/lib') : [];
  return dirs.map((d) => path.join('/usr/lib', d, 'blas', 'libblas.so.3')).find((f) => fs.existsSync(f));
}
const reference = referenceBlas();
const refBlas = prerequisite("Debian's reference BLAS", reference ? null : 'no /usr/lib/<triplet>/blas/libblas.so.3 (apt-get install libblas3)');

function cpuFlags(): Set<string> {
  const line = fs.readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('flags')) ?? '';
  return new Set(line.split(':')[1]?.trim().split(/\s+/) ?? []);
}

let healthy: DoctorReport | undefined;

built.describe('finetorch doctor', () => {
  test('on this machine: exit 0, the OpenBLAS the alternatives link names, libtorch 1.13 and its folder, the CPU flags /proc/cpuinfo lists', async () => {
    assertPresent(built);
    const result = await runCli(['doctor', '--json']);
    expectExit(result, 0, 'doctor --json');
    const report = JSON.parse(result.out) as DoctorReport;
    healthy = report;
    expect(report.problems).toBe(0);
    const { facts } = report;
    expect(facts.blas.kind).toBe('openblas');
    const link = path.join(facts.libtorch.dir as string, 'libblas.so.3');
    if (fs.existsSync(link)) expect(facts.blas.file).toBe(fs.realpathSync(link)); // Debian: the alternatives target
    expect(facts.runtime?.torchVersion).toMatch(/^1\.13\./);
    // the report says how libtorch was found: the checkout's build finds it itself, a prebuilt
    // (left in prebuilds/ by npm run prebuild) through the loader's search
    const libtorchLine = report.findings.find((f) => f.area === 'libtorch')?.detail;
    if (/build\/Release\/finetorch\.node$/.test(facts.addon.file ?? '')) expect(libtorchLine).toContain("libtorch found through the addon's own search");
    else expect(libtorchLine).toMatch(/finetorch\.libtorch-1\.13\.node, libtorch found through (LIBTORCH|the (python torch|system) \()/);
    expect(fs.existsSync(path.join(facts.libtorch.dir as string, `libtorch_cpu.so.${facts.libtorch.fileVersion}`))).toBe(true);
    const flags = cpuFlags();
    const present = Object.fromEntries(facts.cpu.features.map((f) => [f.name, f.present]));
    expect(present).toMatchObject({ avx2: flags.has('avx2'), avx512f: flags.has('avx512f'), avx512_bf16: flags.has('avx512_bf16') });
    expect(facts.cpu.flags).toEqual([...flags]);
    expect(report.findings.find((f) => f.area === 'sharp')?.detail).toMatch(/^sharp \d+\.\d+\.\d+, libvips \d+\.\d+\.\d+$/);
  });

  test('the text report: one line per area and "no problems found"', async () => {
    assertPresent(built);
    const result = await runCli(['doctor']);
    expectExit(result, 0, 'doctor');
    for (const area of ['libtorch', 'BLAS', 'threads', 'CPU', 'CUDA', 'malloc', 'CPU block cache', 'sharp', 'weights']) {
      expect(result.out).toMatch(new RegExp(`^(ok|info|WARN) +${area} `, 'm'));
    }
    expect(result.out).toMatch(/^ok +BLAS +OpenBLAS/m);
    expect(result.out.trimEnd().split('\n').pop()).toMatch(/^no problems found/);
  });

  test('without a loadable addon: exit 1, the loader\'s error and the set-up fix; the rest is still reported', async () => {
    assertPresent(built);
    // a copy of the compiled CLI in a package folder with no build/ and no prebuilds/
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-doctor-noaddon-'));
    try {
      fs.cpSync(path.dirname(path.dirname(CLI)), path.join(dir, 'dist'), { recursive: true });
      fs.copyFileSync(path.join(ROOT, 'package.json'), path.join(dir, 'package.json'));
      fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
      fs.symlinkSync(path.join(ROOT, 'configs'), path.join(dir, 'configs'));
      const result = await runCli(['doctor', '--json'], { cli: path.join(dir, 'dist', 'scripts', 'cli.js'), cwd: path.join(dir, 'dist', 'scripts') });
      expectExit(result, 1, 'doctor without an addon');
      const report = JSON.parse(result.out) as DoctorReport;
      const problem = report.findings.find((f) => f.status === 'problem');
      expect(problem).toMatchObject({ area: 'libtorch', detail: expect.stringContaining('Could not load the finetorch native addon'), fix: expect.stringContaining('scripts/setup.sh') });
      expect(problem?.detail).toContain(path.join(dir, 'build', 'Release', 'finetorch.node'));
      expect(report.problems).toBe(1);
      expect(report.findings.map((f) => f.area)).toEqual(expect.arrayContaining(['CPU', 'sharp', 'weights']));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  refBlas.test('with the reference BLAS forced: exit 1, names it, gives the fix; its matmul is the slow one', async () => {
    assertPresent(built);
    assertPresent(refBlas);
    const env = { LD_PRELOAD: reference };
    const json = await runCli(['doctor', '--json'], { env });
    expectExit(json, 1, 'doctor --json with the reference BLAS preloaded');
    const report = JSON.parse(json.out) as DoctorReport;
    expect(report.problems).toBe(1);
    const problem = report.findings.find((f) => f.status === 'problem');
    expect(problem).toMatchObject({ area: 'BLAS', detail: expect.stringContaining('reference BLAS'), fix: expect.stringContaining('LD_PRELOAD') });
    expect(report.facts.blas.file).toBe(fs.realpathSync(reference as string));
    expect(json.err).toContain('doctor found 1 problem');
    // the library named is the one computing: OpenBLAS is an order of magnitude faster
    if (healthy) expect(report.facts.blas.gflops as number).toBeLessThan(healthy.facts.blas.gflops as number);

    const text = await runCli(['doctor'], { env });
    expectExit(text, 1, 'doctor with the reference BLAS preloaded');
    expect(text.out).toMatch(/^PROBLEM +BLAS +reference BLAS/m);
    expect(text.out).toMatch(/^ +fix: take the reference BLAS out of LD_PRELOAD/m);
    expect(text.out.trimEnd().split('\n').pop()).toBe('1 problem, 0 warnings: see the fixes above');
  });
});
