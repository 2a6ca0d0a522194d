#!/usr/bin/python3
"""Writes the torch.save seed files for scripts/fuzz/ (formats.ts) into test/fuzz/seeds/ (or argv[1]).

Run with Debian's /usr/bin/python3 (python3-torch 1.13); the pyenv python3 on PATH has no torch.
The fuzzer makes its other seeds itself (zip .pth through finetorch's own writer, safetensors,
images, configs, manifests, checkpoints); these are the ones only PyTorch can write: legacy
(pre-1.6) files and zip files laid out by Python's torch.save, state_dicts and whole pickled models
(torch.save(model)). Kept tiny (a few KB) so that
10,000 mutations of each load in milliseconds.
"""
import collections
import os
import sys

import torch

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), '..', 'test', 'fuzz', 'seeds')
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)


def small_state_dict():
    base = torch.randn(6)
    return collections.OrderedDict([
        ('conv.weight', torch.randn(2, 1, 2, 2)),
        ('conv.bias', torch.randn(2)),
        ('bn.running_mean', base[2:]),  # a view: non-zero storage offset
        ('bn.num_batches_tracked', torch.tensor(5)),
        ('fc.weight', torch.randn(3, 2).t()),  # non-contiguous strides
        ('fc.half', torch.randn(4).half()),
        ('mask', torch.tensor([True, False, True])),
        ('u8', torch.tensor([0, 7, 255], dtype=torch.uint8)),
        ('empty', torch.zeros(0, 3)),
    ])


def mixed():
    sd = small_state_dict()
    return {'epoch': 3, 'arch': 'resnet18', 'state_dict': sd, 'best_acc1': 0.25, 'big': 2**40, 'neg': -2**63,
            'name': 'r\u00e9snet \u2603', 'bytes': b'\x00\x01abc\xff', 'tuple': (1, 'a', None, True, 2.5),
            'nested': {'a': [1, [2, [3, {}]]]}, 'intkeys': {0: 'x', -1: 'y'},
            'param': torch.nn.Parameter(torch.randn(3))}


def small_module():
    # torch.save(model): module objects the reader turns into a state_dict (sets, None biases,
    # a non-persistent buffer, one child under two names, a class kept as an attribute).
    torch.manual_seed(0)
    shared = torch.nn.Linear(2, 2)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 2, bias=False), torch.nn.BatchNorm2d(2), torch.nn.ReLU(),
                                shared, shared)
    model[1].running_var.fill_(0.5)
    model[3].register_buffer('scratch', torch.ones(1), persistent=False)
    model.norm_layer = torch.nn.BatchNorm2d
    return model


def save(name, obj, **kw):
    torch.save(obj, os.path.join(out, name), **kw)


for protocol in (2, 4):
    save('legacy-sd-p%d.pth' % protocol, small_state_dict(), _use_new_zipfile_serialization=False, pickle_protocol=protocol)
    save('zip-py-sd-p%d.pth' % protocol, small_state_dict(), pickle_protocol=protocol)
save('legacy-mixed-p2.pth', mixed(), _use_new_zipfile_serialization=False)
save('legacy-sd-p1.pth', small_state_dict(), _use_new_zipfile_serialization=False, pickle_protocol=1)
save('zip-py-mixed-p3.pth', mixed(), pickle_protocol=3)
for protocol in (1, 2, 4):
    save('zip-py-module-p%d.pth' % protocol, small_module(), pickle_protocol=protocol)
# legacy files also carry each module class's source: one small class keeps the seed small
save('legacy-module-p2.pth', torch.nn.Linear(2, 2), _use_new_zipfile_serialization=False)
for f in sorted(os.listdir(out)):
    print('%6d  %s' % (os.path.getsize(os.path.join(out, f)), f))
