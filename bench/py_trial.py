# One PyTorch trial of `npm run bench`, run in its own process by bench/run.js with
# /usr/bin/python3 (Debian's torch 1.13 + torchvision 0.14). Argument: one JSON spec.
# Prints one line "BENCH_RESULT {json}" on stdout; everything else goes to stderr.
#
# Kinds (the same work as bench/ft_trial.js does with finetorch):
#   step      in-memory random batch: train step (SGD, momentum 0.9) or eval (no_grad) img/s;
#             with amp 'bf16' in the spec, forward + loss under torch.autocast('cpu', bfloat16)
#   epoch     ImageFolder + DataLoader(num_workers) with augmentation, train step per batch;
#             then in-memory steps in the same process (pipeline efficiency)
#   loader    the same ImageFolder + DataLoader pipeline without training: img/s
#   features  feature_extract phase as a plain loop: every epoch forward through the frozen
#             backbone + train the head, validate; a few epochs measured, the rest extrapolated
import contextlib
import json
import os
import resource
import statistics
import sys
import time


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def rss_mb(field='VmRSS'):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1]) / 1024.0
    return float('nan')


def emit(result):
    own = resource.getrusage(resource.RUSAGE_SELF)
    result['cpuSeconds'] = own.ru_utime + own.ru_stime  # this process, all threads (workers are sampled by run.js)
    result['peakRssMB'] = rss_mb('VmHWM')
    result['rssMB'] = rss_mb('VmRSS')
    print('BENCH_RESULT ' + json.dumps(result), flush=True)


spec = json.loads(sys.argv[1])
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torchvision  # noqa: E402
from torchvision import transforms as T  # noqa: E402

torch.set_num_threads(spec['threads'])
torch.manual_seed(spec.get('seed', 0))
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def make_model(arch, num_classes):
    return getattr(torchvision.models, arch)(num_classes=num_classes)


def topk_counts(logits, target):
    # finetorch's steps count top-1/top-5 hits; do the same work here
    k = min(5, logits.size(1))
    top = logits.topk(k, 1).indices
    hit = top.eq(target.view(-1, 1))
    return int(hit[:, :1].sum()), int(hit.sum())


def autocast(amp):
    # PyTorch's recipe: autocast around forward and loss only; backward runs outside it
    if amp == 'bf16':
        return torch.autocast(device_type='cpu', dtype=torch.bfloat16)
    if amp in (None, 'none'):
        return contextlib.nullcontext()
    raise SystemExit("amp: expected 'bf16' or none on the CPU, got %r" % amp)


def train_step(model, opt, x, y, amp=None):
    opt.zero_grad(set_to_none=True)  # finetorch sets gradients to none, too
    with autocast(amp):
        out = model(x)
        loss = F.cross_entropy(out, y)
    value = loss.item()
    loss.backward()
    topk_counts(out.detach(), y)
    opt.step()
    return value


def eval_step(model, x, y, amp=None):
    with torch.no_grad(), autocast(amp):
        out = model(x)
        value = F.cross_entropy(out, y).item()
        topk_counts(out, y)
    return value


def to_cl(model, x, channels_last):
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    return model, x


def run_steps(fn, warmup, steps, images_per_step):
    for _ in range(warmup):
        fn()
    times = []
    before = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    after = resource.getrusage(resource.RUSAGE_SELF)
    user = after.ru_utime - before.ru_utime
    system = after.ru_stime - before.ru_stime
    return {
        'imgPerSec': steps * images_per_step / sum(times),
        'stepSeconds': times,
        'medianStepSeconds': statistics.median(times),
        # page faults and CPU per timed step (whole process, all threads)
        'minorFaultsPerStep': (after.ru_minflt - before.ru_minflt) / steps,
        # context switches per step (whole process)
        'voluntaryCtxSwitchesPerStep': (after.ru_nvcsw - before.ru_nvcsw) / steps,
        'involuntaryCtxSwitchesPerStep': (after.ru_nivcsw - before.ru_nivcsw) / steps,
        'userCpuPerStep': user / steps,
        'systemCpuPerStep': system / steps,
        'coresUsed': (user + system) / sum(times),
    }


def kind_step(s):
    num_classes = s.get('numClasses', 101)
    model = make_model(s['arch'], num_classes)
    x = torch.randn(s['batch'], 3, s['size'], s['size'])
    y = torch.randint(0, num_classes, (s['batch'],))
    model, x = to_cl(model, x, s.get('channelsLast', False))
    amp = s.get('amp')
    if s['mode'] == 'train':
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        fn = lambda: train_step(model, opt, x, y, amp)  # noqa: E731
    else:
        model.eval()
        fn = lambda: eval_step(model, x, y, amp)  # noqa: E731
    result = run_steps(fn, s['warmup'], s['steps'], s['batch'])
    result['amp'] = amp or 'none'
    result['layout'] = 'channels-last model + batch' if s.get('channelsLast') else 'contiguous'
    return result


class ListDataset(torch.utils.data.Dataset):
    """torchvision's ImageFolder restricted to the bench's file list (same files as finetorch)."""

    def __init__(self, root, files, transform):
        self.folder = torchvision.datasets.ImageFolder(root, transform=transform)
        index = {p: i for i, (p, _) in enumerate(self.folder.samples)}
        missing = [f['path'] for f in files if f['path'] not in index]
        if missing:
            raise SystemExit('not found by ImageFolder: %s' % missing[:3])
        self.indices = [index[f['path']] for f in files]
        self.labels = [f['label'] for f in files]

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        image, _ = self.folder[self.indices[i]]
        return image, self.labels[i]


def train_tf(size):
    # torchvision's standard training pipeline with the seed's augmentation
    return T.Compose([
        T.RandomResizedCrop(size),
        T.RandomHorizontalFlip(),
        T.ColorJitter(0.1, 0.1, 0.1),
        T.ToTensor(),
        T.Normalize(MEAN, STD),
    ])


def eval_tf(size, resize):
    return T.Compose([T.Resize(resize), T.CenterCrop(size), T.ToTensor(), T.Normalize(MEAN, STD)])


def loader_for(s, files, transform, shuffle, workers=None):
    dataset = ListDataset(s['imageRoot'], files, transform)
    workers = s['workers'] if workers is None else workers
    return torch.utils.data.DataLoader(dataset, batch_size=s['batch'], shuffle=shuffle, num_workers=workers,
                                       drop_last=False, persistent_workers=workers > 0)


def read_files(s):
    with open(s['filesJson']) as f:
        return json.load(f)


def kind_epoch(s):
    files = read_files(s)
    num_classes = s['numClasses']
    model = make_model('resnet18', num_classes)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(s['batch'], 3, s['size'], s['size'])
    y = torch.randint(0, num_classes, (s['batch'],))
    amp = s.get('amp')
    for _ in range(s['warmup']):
        train_step(model, opt, x, y, amp)
    loader = loader_for(s, files, train_tf(s['size']), shuffle=True)
    epochs = []
    for _ in range(s['epochs']):
        t0 = time.perf_counter()
        seen = 0
        wait = 0.0
        tw = time.perf_counter()
        for images, labels in loader:
            wait += time.perf_counter() - tw
            train_step(model, opt, images, labels, amp)
            seen += images.size(0)
            tw = time.perf_counter()
        dt = time.perf_counter() - t0
        epochs.append({'seconds': dt, 'images': seen, 'imgPerSec': seen / dt, 'waitSeconds': wait})
        log('py epoch: %d images in %.2f s (%.1f img/s, %.2f s waiting for data)' % (seen, dt, seen / dt, wait))
    inmem = run_steps(lambda: train_step(model, opt, x, y, amp), 0, s['inMemSteps'], s['batch'])
    return {'epochs': epochs, 'inMemory': inmem, 'amp': amp or 'none'}


def kind_loader(s):
    files = read_files(s)
    loader = loader_for(s, files, train_tf(s['size']), shuffle=True)
    epochs = []
    for _ in range(s['epochs']):
        t0 = time.perf_counter()
        seen = 0
        for images, _labels in loader:
            seen += images.size(0)
        dt = time.perf_counter() - t0
        epochs.append({'seconds': dt, 'images': seen, 'imgPerSec': seen / dt})
        log('py loader epoch: %d images in %.2f s (%.1f img/s)' % (seen, dt, seen / dt))
    return {'epochs': epochs}


def kind_features(s):
    """feature_extract without a feature cache: what a plain PyTorch loop does every epoch."""
    t_start = time.perf_counter()
    with open(s['splitJson']) as f:
        split = json.load(f)  # written by ft_trial.js from the finetorch run's split: absolute paths
    classes = split['classes']
    train_files, test_files = split['train'], split['test']
    val_files = split['val'] if split['val'] else test_files
    num_classes = len(classes)
    model = make_model('resnet18', num_classes)
    for name, p in model.named_parameters():
        p.requires_grad = name.startswith('fc.')
    model.eval()  # frozen backbone: BatchNorm statistics fixed, as finetorch does
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=s['lr'], weight_decay=s['weightDecay'])
    tf = eval_tf(s['size'], s['resize'])
    cfg = dict(s, imageRoot=split['root'])
    train_loader = loader_for(cfg, train_files, tf, shuffle=True)
    val_loader = loader_for(cfg, val_files, tf, shuffle=False)
    setup = time.perf_counter() - t_start

    def evaluate(loader):
        with torch.no_grad():
            for images, labels in loader:
                out = model(images)
                F.cross_entropy(out, labels).item()
                topk_counts(out, labels)

    epoch_seconds = []
    for epoch in range(s['measureEpochs']):
        t0 = time.perf_counter()
        for images, labels in train_loader:
            train_step(model, opt, images, labels)
        evaluate(val_loader)
        epoch_seconds.append(time.perf_counter() - t0)
        log('py feature_extract epoch %d: %.2f s' % (epoch + 1, epoch_seconds[-1]))
    # the final test pass (finetorch's train() tests the best weights at the end)
    t0 = time.perf_counter()
    evaluate(loader_for(cfg, test_files, tf, shuffle=False))
    test_seconds = time.perf_counter() - t0
    typical = statistics.median(epoch_seconds[1:] if len(epoch_seconds) > 1 else epoch_seconds)
    total = setup + sum(epoch_seconds) + (s['epochs'] - len(epoch_seconds)) * typical + test_seconds
    return {
        'setupSeconds': setup, 'epochSeconds': epoch_seconds, 'testSeconds': test_seconds,
        'measuredEpochs': len(epoch_seconds), 'epochs': s['epochs'], 'totalSeconds': total,
        'extrapolated': len(epoch_seconds) < s['epochs'],
        'trainImages': len(train_files), 'valImages': len(val_files),
    }


def kind_int8(s):
    """Eager-mode static quantization of torchvision's quantizable ResNet-18 (fuse, prepare with the
    engine's default qconfig, calibrate on the timed batch, convert) on the best engine this
    torch has; then the int8 forward and the float forward, logits only, as bench/ft_trial.js."""
    from torch.ao.quantization import get_default_qconfig, prepare, convert
    engine = next(e for e in ('x86', 'fbgemm', 'onednn', 'qnnpack') if e in torch.backends.quantized.supported_engines)
    torch.backends.quantized.engine = engine
    float_model = make_model(s['arch'], s['numClasses']).eval()
    model = getattr(torchvision.models.quantization, s['arch'])(weights=None, quantize=False, num_classes=s['numClasses']).eval()
    model.load_state_dict(float_model.state_dict())
    model.fuse_model()
    model.qconfig = get_default_qconfig(engine)
    prepare(model, inplace=True)
    x = torch.randn(s['batch'], 3, s['size'], s['size'])
    with torch.no_grad():
        model(x)
        convert(model, inplace=True)
        result = run_steps(lambda: model(x), s['warmup'], s['steps'], s['batch'])
        result['fp32ImgPerSec'] = run_steps(lambda: float_model(x), s['warmup'], s['steps'], s['batch'])['imgPerSec']
    result['engine'] = engine
    return result


KINDS = {'int8': kind_int8, 'step': kind_step, 'epoch': kind_epoch, 'loader': kind_loader, 'features': kind_features}
result = KINDS[spec['kind']](spec)
result['threads'] = torch.get_num_threads()
result['torchVersion'] = torch.__version__
emit(result)
