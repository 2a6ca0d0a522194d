// The layering of lib/ (docs/architecture.md): no import cycle, no lower layer importing a higher
// one. dependency-cruiser checks the rules in .dependency-cruiser.cjs over the real tree, and the
// same rules are shown to catch a planted cycle and upward import.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const root = path.resolve(__dirname, '..');
const config = path.join(root, '.dependency-cruiser.cjs');
const depcruise = path.join(root, 'node_modules', '.bin', 'depcruise');

function cruise(cwd: string, folders: string[]): { status: number | null; output: string } {
  const result = spawnSync(depcruise, [...folders, '--config', config, '--output-type', 'err'], { cwd, encoding: 'utf8' });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

test('lib/, binding/ and scripts/ have no import cycle and no upward import', () => {
  const { status, output } = cruise(root, ['lib', 'binding', 'scripts']);
  expect(output).toContain('no dependency violations found');
  expect(status).toBe(0);
});

test('the rules catch a cycle and a model importing the experiment layer', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-layers-'));
  try {
    fs.mkdirSync(path.join(dir, 'lib', 'models'), { recursive: true });
    fs.mkdirSync(path.join(dir, 'lib', 'experiment'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { module: 'commonjs', strict: true } }));
    fs.writeFileSync(path.join(dir, 'lib', 'models', 'net.ts'), "import { run } from '../experiment/run';\nexport const net = () => run;\n");
    fs.writeFileSync(path.join(dir, 'lib', 'experiment', 'run.ts'), "import { net } from '../models/net';\nexport const run = () => net;\n");
    const { status, output } = cruise(dir, ['lib']);
    expect(status).not.toBe(0);
    expect(output).toMatch(/no-circular/);
    expect(output).toMatch(/models-under-training: lib\/models\/net\.ts → lib\/experiment\/run\.ts/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
