import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { gatherFacts } from '../../lib/doctor';

describe('gatherFacts in this process', () => {
  let home: string;
  beforeAll(() => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-doctor-'));
    const cache = path.join(home, 'hub', 'checkpoints');
    fs.mkdirSync(cache, { recursive: true });
    fs.writeFileSync(path.join(cache, 'resnet18-f37072fd.pth'), Buffer.alloc(1000, 7)); // right name, wrong bytes
    fs.writeFileSync(path.join(cache, 'alexnet-owt-7be5be79.pth.part'), Buffer.alloc(10));
    fs.writeFileSync(path.join(cache, 'mine.pth'), Buffer.alloc(10));
  });
  afterAll(() => fs.rmSync(home, { recursive: true, force: true }));

  test('the torch hub cache: which known files are there, their sizes, unfinished downloads, other files; --verify hashes them', async () => {
    const facts = await gatherFacts({ env: { ...process.env, TORCH_HOME: home }, verify: true });
    const w = facts.weights;
    expect(w.dir).toBe(path.join(home, 'hub', 'checkpoints'));
    expect(w.files.find((f) => f.arch === 'resnet18')).toEqual({ arch: 'resnet18', file: 'resnet18-f37072fd.pth', present: true, bytes: 1000, hashMatches: false });
    expect(w.files.filter((f) => f.present)).toHaveLength(1);
    expect(w.partial).toEqual(['alexnet-owt-7be5be79.pth.part']);
    expect(w.other).toEqual(['mine.pth']);
    expect(facts.env.TORCH_HOME).toBe(home);
    const unverified = await gatherFacts({ env: { ...process.env, TORCH_HOME: home } });
    expect(unverified.weights.files.find((f) => f.arch === 'resnet18')?.hashMatches).toBeUndefined();
  });

  test('libtorch as loaded: the folder holds the libtorch_cpu named by the version libtorch reports', async () => {
    const facts = await gatherFacts();
    expect(facts.runtime?.torchVersion).toMatch(/^\d+\.\d+\.\d+/);
    expect(facts.libtorch.dir).toBeDefined();
    const names = fs.readdirSync(facts.libtorch.dir as string);
    expect(names.some((n) => n.startsWith('libtorch_cpu.so'))).toBe(true);
    if (facts.libtorch.fileVersion) expect(facts.runtime?.torchVersion.startsWith(facts.libtorch.fileVersion)).toBe(true);
    expect(facts.addon.file && fs.existsSync(facts.addon.file)).toBe(true);
    expect(facts.blas.gflops).toBeGreaterThan(0);
    expect(facts.cores.usable).toBeGreaterThanOrEqual(1);
    expect(facts.cores.usable).toBeLessThanOrEqual(facts.cores.online);
  });

  test('a config that does not resolve is recorded, not thrown', async () => {
    const facts = await gatherFacts({ config: path.join(home, 'missing.yaml') });
    expect(facts.config.file).toBe(path.join(home, 'missing.yaml'));
    expect(facts.config.error).toMatch(/missing\.yaml/);
  });
});
