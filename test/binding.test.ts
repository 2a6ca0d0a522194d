import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { candidatePaths, loadAddon, packageRoot } from '../binding';

describe('addon loader', () => {
  test('tries prebuilds/<platform>-<arch> before build/Release', () => {
    const root = packageRoot();
    const paths = candidatePaths(root);
    const prebuildIndex = paths.findIndex((p) => p.includes(path.join('prebuilds', `${process.platform}-${process.arch}`)));
    const buildIndex = paths.indexOf(path.join(root, 'build', 'Release', 'finetorch.node'));
    expect(prebuildIndex).toBeGreaterThanOrEqual(0);
    expect(buildIndex).toBeGreaterThan(prebuildIndex);
  });

  test('when nothing loads, one error lists every path tried with its reason and a fix', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-loader-'));
    const broken = path.join(dir, 'broken.node');
    fs.writeFileSync(broken, 'not an ELF file');
    const missing = path.join(dir, 'missing.node');
    let message = '';
    try {
      loadAddon([missing, broken]);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain('Could not load the finetorch native addon');
    expect(message).toContain(`${missing}: not found`);
    expect(message).toContain(`${broken}: `);
    expect(message).toMatch(/invalid ELF header|file too short/);
    expect(message).toContain('scripts/setup.sh');
    fs.rmSync(dir, { recursive: true });
  });

  test('a missing libtorch is named with the likely fix', () => {
    // an addon-like library linked against a libtorch_cpu that is gone by load time
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-nolib-'));
    fs.writeFileSync(path.join(dir, 'lib.c'), 'int torch_stub(void) { return 1; }');
    fs.writeFileSync(path.join(dir, 'addon.c'), 'int torch_stub(void); int use(void) { return torch_stub(); }');
    const build = spawnSync('sh', ['-c', [
      'cc -shared -fPIC -o libtorch_cpu.so.99 lib.c -Wl,-soname,libtorch_cpu.so.99',
      'cc -shared -fPIC -o fake.node addon.c ./libtorch_cpu.so.99',
      'rm libtorch_cpu.so.99',
    ].join(' && ')], { cwd: dir, encoding: 'utf8' });
    expect(build.stderr).toBe('');
    expect(() => loadAddon([path.join(dir, 'fake.node')])).toThrow(
      /libtorch_cpu\.so\.99: cannot open shared object file[\s\S]*fix: libtorch_cpu\.so\.99 not found: run scripts\/setup\.sh .* or set LIBTORCH=/,
    );
    fs.rmSync(dir, { recursive: true });
  });
});
