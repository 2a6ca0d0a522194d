// torchvision's weight table (checked against Debian's torchvision sources), torch.hub's cache
// folder rules (checked against torch.hub itself when Debian's torch is there), and ensureWeights
// against a loopback server.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ChecksumError } from '../../lib/download/fetch-file';
import {
  IMAGENET_WEIGHTS, WEIGHTS_BASE_URL_ENV, ensureWeights, hashPrefixFromName, hubCacheDir, weightsEntry,
} from '../../lib/download/weights';
import { assertPresent, prerequisite } from '../helpers/prerequisite';
import { findTorchPython, torchPythonUnavailableReason } from '../helpers/python';
import { bytes, serveBytes, startServer, type TestServer } from './server';

jest.setTimeout(60_000);

const TORCHVISION = '/usr/lib/python3/dist-packages/torchvision/models';
const FAST = { retryDelayMs: 5, timeoutMs: 5000 };

// The references: Debian's torchvision sources and torch.hub. Skipped without them (saying why),
// a failure where CI is set.
const torchvisionSources = prerequisite(
  "Debian's torchvision sources",
  fs.existsSync(TORCHVISION) ? null : `${TORCHVISION} is absent (apt-get install python3-torchvision)`,
);
const torch = prerequisite('PyTorch reference', findTorchPython() ? null : torchPythonUnavailableReason());

let server: TestServer;
let tmp: string;
let weights: Buffer; // a small torch.save file when Debian's torch is there, else plain bytes
let weightsName: string;

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

beforeAll(async () => {
  const python = findTorchPython();
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-w-'));
  try {
    if (python) {
      const file = path.join(scratch, 'tiny.pth');
      const run = spawnSync(
        python,
        ['-c', 'import sys, torch; torch.manual_seed(0); torch.save({"fc.weight": torch.randn(3, 4), "fc.bias": torch.zeros(3)}, sys.argv[1])', file],
        { encoding: 'utf8', timeout: 60_000, env: { ...process.env, PYTHONPATH: '', PYTHONHOME: '' } },
      );
      if (run.status !== 0) throw new Error(`torch.save of the test weights failed:\n${run.stderr}`);
      weights = fs.readFileSync(file);
      expect(weights.subarray(0, 2).toString('latin1')).toBe('PK'); // torch.save's zip format
    }
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
  weights ??= Buffer.concat([Buffer.from('PK\x03\x04not really torch'), bytes(50_000, 3)]);
  weightsName = `resnet18-${sha256(weights).slice(0, 8)}.pth`;
  server = await startServer();
  server.route(`/w/${weightsName}`, serveBytes(weights));
  // Served under the official name, but not the official bytes: the name's prefix must catch it.
  server.route('/mirror/resnet18-f37072fd.pth', serveBytes(bytes(10_000, 4)));
});

afterAll(async () => {
  await server?.close();
});

beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'finetorch-w-'));
});

afterEach(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('weights table', () => {
  test('has the IMAGENET1K_V1 URLs of torchvision 0.14', () => {
    expect(IMAGENET_WEIGHTS.map((e) => [e.arch, e.url, e.file])).toEqual([
      ['resnet18', 'https://download.pytorch.org/models/resnet18-f37072fd.pth', 'resnet18-f37072fd.pth'],
      ['alexnet', 'https://download.pytorch.org/models/alexnet-owt-7be5be79.pth', 'alexnet-owt-7be5be79.pth'],
      ['resnet34', 'https://download.pytorch.org/models/resnet34-b627a593.pth', 'resnet34-b627a593.pth'],
      ['resnet50', 'https://download.pytorch.org/models/resnet50-0676ba61.pth', 'resnet50-0676ba61.pth'],
      ['vgg16', 'https://download.pytorch.org/models/vgg16-397923af.pth', 'vgg16-397923af.pth'],
      ['mobilenet_v3_large', 'https://download.pytorch.org/models/mobilenet_v3_large-8738ca79.pth', 'mobilenet_v3_large-8738ca79.pth'],
      // the same bytes as 0.14's efficientnet_b0_rwightman-3dd342df.pth, under a name whose hash is right
      ['efficientnet_b0', 'https://download.pytorch.org/models/efficientnet_b0_rwightman-7f5810bc.pth', 'efficientnet_b0_rwightman-7f5810bc.pth'],
    ]);
    for (const e of IMAGENET_WEIGHTS) expect(e.url.endsWith(`/${e.file}`)).toBe(true);
    expect(weightsEntry('vgg16').file).toBe('vgg16-397923af.pth');
  });

  torchvisionSources.test('matches the IMAGENET1K_V1 entries in Debian torchvision sources', () => {
    assertPresent(torchvisionSources);
    const files: Record<string, string> = {
      resnet18: 'resnet.py', resnet34: 'resnet.py', resnet50: 'resnet.py', alexnet: 'alexnet.py', vgg16: 'vgg.py', mobilenet_v3_large: 'mobilenetv3.py', efficientnet_b0: 'efficientnet.py',
    };
    const classes: Record<string, string> = { alexnet: 'AlexNet', vgg16: 'VGG16', mobilenet_v3_large: 'MobileNet_V3_Large', efficientnet_b0: 'EfficientNet_B0' };
    // 0.14's EfficientNet-B0 name carries a wrong hash (its sha256 starts 7f5810bc, pytorch/vision#7744)
    const renamed: Record<string, string> = {
      'https://download.pytorch.org/models/efficientnet_b0_rwightman-7f5810bc.pth': 'https://download.pytorch.org/models/efficientnet_b0_rwightman-3dd342df.pth',
    };
    for (const e of IMAGENET_WEIGHTS) {
      const source = fs.readFileSync(path.join(TORCHVISION, files[e.arch]), 'utf8');
      // The class for this arch, e.g. `class ResNet18_Weights(WeightsEnum):\n    IMAGENET1K_V1 = Weights(\n        url="..."`
      const cls = new RegExp(`class ${classes[e.arch] ?? `ResNet${e.arch.slice(6)}`}_Weights\\(WeightsEnum\\):\\s*IMAGENET1K_V1 = Weights\\(\\s*(?:#[^\\n]*\\s*)?url="([^"]+)"`);
      expect(cls.exec(source)?.[1]).toBe(renamed[e.url] ?? e.url);
    }
  });

  test('hash prefixes are found in names as torch.hub finds them', () => {
    expect(hashPrefixFromName('resnet18-f37072fd.pth')).toBe('f37072fd');
    expect(hashPrefixFromName('alexnet-owt-7be5be79.pth')).toBe('7be5be79');
    expect(hashPrefixFromName('/x/y/vgg16-397923af.pth')).toBe('397923af');
    expect(hashPrefixFromName('plain.pth')).toBeUndefined();
    expect(hashPrefixFromName('x-.pth')).toBeUndefined();
  });

  test('unknown architectures are refused, sharp-style', async () => {
    await expect(ensureWeights('resnet19' as never, { cacheDir: tmp })).rejects.toThrow(
      "Expected one of 'alexnet', 'resnet18', 'resnet34', 'resnet50', 'vgg16', 'mobilenet_v3_large', 'efficientnet_b0' for arch but received 'resnet19' of type string",
    );
  });
});

describe('hubCacheDir', () => {
  test('follows TORCH_HOME, then XDG_CACHE_HOME, then ~/.cache', () => {
    const home = os.homedir();
    expect(hubCacheDir({ TORCH_HOME: '/t', XDG_CACHE_HOME: '/x' })).toBe('/t/hub/checkpoints');
    expect(hubCacheDir({ XDG_CACHE_HOME: '/x' })).toBe('/x/torch/hub/checkpoints');
    expect(hubCacheDir({})).toBe(path.join(home, '.cache/torch/hub/checkpoints'));
    expect(hubCacheDir({ TORCH_HOME: '~/th' })).toBe(path.join(home, 'th/hub/checkpoints'));
    expect(hubCacheDir({ XDG_CACHE_HOME: '~/xdg' })).toBe(path.join(home, 'xdg/torch/hub/checkpoints'));
  });

  torch.test('agrees with torch.hub.get_dir()', () => {
    assertPresent(torch);
    const script = [
      'import json, os, torch.hub',
      'out = []',
      'for env in json.loads(os.environ["CASES"]):',
      '    for k in ("TORCH_HOME", "XDG_CACHE_HOME"): os.environ.pop(k, None)',
      '    os.environ.update(env)',
      '    out.append(os.path.join(torch.hub.get_dir(), "checkpoints"))',
      'print(json.dumps(out))',
    ].join('\n');
    const cases = [{ TORCH_HOME: '/t', XDG_CACHE_HOME: '/x' }, { XDG_CACHE_HOME: '/x' }, {}, { TORCH_HOME: '~/th' }, { XDG_CACHE_HOME: '~/xdg' }];
    const run = spawnSync(findTorchPython()!, ['-c', script], {
      encoding: 'utf8', timeout: 60_000, env: { ...process.env, CASES: JSON.stringify(cases), PYTHONPATH: '', PYTHONHOME: '' },
    });
    expect(run.stderr).not.toMatch(/Traceback/);
    expect(JSON.parse(run.stdout)).toEqual(cases.map((c) => hubCacheDir(c)));
  });
});

describe('ensureWeights', () => {
  test("downloads a weights file whose name carries its sha256 prefix (a torch.save file when torch is there)", async () => {
    const spec = { url: server.url(`/w/${weightsName}`) };
    const before = server.hitsFor(`/w/${weightsName}`).length;
    const file = await ensureWeights(spec, { cacheDir: tmp, ...FAST });
    expect(file).toBe(path.join(tmp, weightsName));
    expect(fs.readFileSync(file).equals(weights)).toBe(true);
    expect(fs.readdirSync(tmp)).toEqual([weightsName]);
    expect(server.hitsFor(`/w/${weightsName}`).length - before).toBe(1);
    // Asked again: the cached file is used, no request is made.
    expect(await ensureWeights(spec, { cacheDir: tmp, ...FAST })).toBe(file);
    expect(server.hitsFor(`/w/${weightsName}`).length - before).toBe(1);
  });

  test('reuses a file that is already in the cache (e.g. fetched by PyTorch) without a request', async () => {
    fs.writeFileSync(path.join(tmp, weightsName), weights);
    const before = server.hits.length;
    expect(await ensureWeights({ url: server.url(`/w/${weightsName}`) }, { cacheDir: tmp })).toBe(path.join(tmp, weightsName));
    expect(server.hits.length).toBe(before);
  });

  test('a corrupt cached file is downloaded again, with a warning', async () => {
    const target = path.join(tmp, weightsName);
    fs.writeFileSync(target, Buffer.from('truncated'));
    const warnings: string[] = [];
    const before = server.hitsFor(`/w/${weightsName}`).length;
    await ensureWeights({ url: server.url(`/w/${weightsName}`) }, { cacheDir: tmp, warn: (m) => warnings.push(m), ...FAST });
    expect(fs.readFileSync(target).equals(weights)).toBe(true);
    expect(server.hitsFor(`/w/${weightsName}`).length - before).toBe(1);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(`cached weights '${target}' are corrupt`);
    expect(warnings[0]).toContain(`does not start with ${weightsName.slice(9, 17)}`);
  });

  test('respects TORCH_HOME when no cacheDir is given', async () => {
    const saved = process.env.TORCH_HOME;
    process.env.TORCH_HOME = path.join(tmp, 'torch-home');
    try {
      const file = await ensureWeights({ url: server.url(`/w/${weightsName}`) }, FAST);
      expect(file).toBe(path.join(tmp, 'torch-home', 'hub', 'checkpoints', weightsName));
      expect(fs.readFileSync(file).equals(weights)).toBe(true);
    } finally {
      if (saved === undefined) delete process.env.TORCH_HOME;
      else process.env.TORCH_HOME = saved;
    }
  });

  test('baseUrl fetches <base>/<official file name> and checks the official prefix', async () => {
    const before = server.hitsFor('/mirror/resnet18-f37072fd.pth').length;
    const error = (await ensureWeights('resnet18', { cacheDir: tmp, baseUrl: server.url('/mirror/'), ...FAST }).catch((e) => e)) as Error;
    expect(error).toBeInstanceOf(ChecksumError);
    expect(error.message).toContain(`expected a sha256 starting with f37072fd, got ${sha256(bytes(10_000, 4))}`);
    expect(error.message).toContain(path.join(tmp, 'resnet18-f37072fd.pth'));
    expect(server.hitsFor('/mirror/resnet18-f37072fd.pth').length - before).toBe(1);
    expect(fs.readdirSync(tmp)).toEqual([]);
  });

  test(`honours $${WEIGHTS_BASE_URL_ENV}`, async () => {
    const saved = process.env[WEIGHTS_BASE_URL_ENV];
    process.env[WEIGHTS_BASE_URL_ENV] = server.url('/mirror');
    try {
      const before = server.hitsFor('/mirror/resnet18-f37072fd.pth').length;
      await expect(ensureWeights('resnet18', { cacheDir: tmp, ...FAST })).rejects.toThrow(
        `(weights base URL ${server.url('/mirror')} from $${WEIGHTS_BASE_URL_ENV})`,
      );
      expect(server.hitsFor('/mirror/resnet18-f37072fd.pth').length - before).toBe(1);
    } finally {
      if (saved === undefined) delete process.env[WEIGHTS_BASE_URL_ENV];
      else process.env[WEIGHTS_BASE_URL_ENV] = saved;
    }
  });
});
