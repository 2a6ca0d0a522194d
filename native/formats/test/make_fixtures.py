#!/usr/bin/python3
"""Fixtures for formats_selftest. Run with Debian's /usr/bin/python3 (python3-torch 1.13).

    make_fixtures.py OUT_DIR
        Writes torch.save files (zip and legacy), plain pickles, malicious and malformed files,
        and OUT_DIR/expected.json describing what the C++ reader must see in each. Zip files are
        also extracted (data.pkl + data/<key>) next to them: the self-test has no zip reader.

    make_fixtures.py --check-roundtrip DIR
        Zips the pickles the self-test wrote (DIR/full.pkl, DIR/weights.pkl, DIR/storages/<key>)
        the way torch.save lays out its archive, torch.loads them (weights.pkl also with
        weights_only=True) and compares with roundtrip_expected().

Expected nodes: one per value, depth first, with a path ('' for the root, '/key' for str keys,
'/#3' for int keys, '/[i]' for list/tuple items), so the C++ side can flatten its tree the same way.
"""
import collections
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import zipfile

import torch
import torchvision

OrderedDict = collections.OrderedDict


def walk(obj, path, nodes, storage_ids):
    if isinstance(obj, torch.Tensor):
        storage = obj.storage()
        # Number storages in order of first use; empty storages have no address to share.
        sid_key = storage.data_ptr() if storage.size() > 0 else ('empty', id(obj))
        sid = storage_ids.setdefault(sid_key, len(storage_ids))
        flat = obj.detach().reshape(-1)
        nodes.append({
            'path': path, 'type': 'tensor', 'dtype': str(obj.dtype).replace('torch.', ''),
            'shape': list(obj.shape), 'stride': list(obj.stride()), 'offset': obj.storage_offset(),
            'requires_grad': obj.requires_grad, 'storage': sid,
            'first': [float(x) for x in flat[:5].tolist()],
            'sum': float(flat.double().sum()), 'abs_sum': float(flat.double().abs().sum())})
    elif isinstance(obj, dict):
        nodes.append({'path': path, 'type': 'odict' if isinstance(obj, OrderedDict) else 'dict', 'len': len(obj)})
        for k, v in obj.items():
            walk(v, path + ('/#%d' % k if isinstance(k, int) else '/' + k), nodes, storage_ids)
    elif isinstance(obj, (list, tuple, set, frozenset)):  # torch.Size is a tuple too; sets read as lists
        nodes.append({'path': path, 'type': 'tuple' if isinstance(obj, tuple) else 'list', 'len': len(obj)})
        for i, v in enumerate(obj):
            walk(v, '%s/[%d]' % (path, i), nodes, storage_ids)
    elif obj is None:
        nodes.append({'path': path, 'type': 'none'})
    elif isinstance(obj, bool):
        nodes.append({'path': path, 'type': 'bool', 'value': obj})
    elif isinstance(obj, int):
        nodes.append({'path': path, 'type': 'int', 'value': obj})
    elif isinstance(obj, float):
        nodes.append({'path': path, 'type': 'float', 'value': obj})
    elif isinstance(obj, str):
        nodes.append({'path': path, 'type': 'str', 'value': obj})
    elif isinstance(obj, bytes):
        nodes.append({'path': path, 'type': 'bytes', 'value': obj.hex()})
    else:
        raise TypeError('%s: %r' % (path, type(obj)))
    return nodes


class Reduce:
    """Pickles as fn(*args): what a malicious file does to run code on load."""

    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def extract_zip(path):
    """Writes <path>.extract/data.pkl and data/<key> from a torch.save zip (any archive prefix)."""
    extract = path + '.extract'
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            rest = name.partition('/')[2]
            if rest == 'data.pkl' or rest.startswith('data/'):
                target = os.path.join(extract, rest)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target, 'wb') as f:
                    f.write(z.read(name))
    return extract


class Skipper(pickle.Unpickler):
    """Reads through a pickle without building tensors."""

    def find_class(self, module, name):
        return OrderedDict if name == 'OrderedDict' else (lambda *args: None)

    def persistent_load(self, pid):
        return None


def legacy_pickle_ends(data):
    """Byte offsets where each of the five pickles of a legacy torch.save file ends."""
    f = io.BytesIO(data)
    ends = []
    for _ in range(5):
        Skipper(f).load()
        ends.append(f.tell())
    return ends


def models():
    torch.manual_seed(0)
    resnet = torchvision.models.resnet18(weights=None)
    torch.manual_seed(0)
    alexnet = torchvision.models.alexnet(weights=None)
    return resnet, alexnet


def checkpoint():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    model(torch.randn(2, 3, 64, 64)).sum().backward()
    opt.step()
    return {'epoch': 3, 'arch': 'resnet18', 'state_dict': model.state_dict(), 'optimizer': opt.state_dict(),
            'best_acc1': 0.25}


def misc():
    torch.manual_seed(1)
    base = torch.randn(6)
    m = torch.randn(2, 3)
    return {
        'param': torch.nn.Parameter(torch.randn(3)), 'base': base, 'view': base[2:], 't': m.t(),
        'half': torch.randn(4).half(), 'bf16': torch.randn(4).bfloat16(), 'bool': torch.tensor([True, False, True]),
        'u8': torch.tensor([0, 7, 255], dtype=torch.uint8), 'i8': torch.tensor([-128, 1, 127], dtype=torch.int8),
        'i16': torch.tensor([-32768, 2, 32767], dtype=torch.int16), 'i32': torch.tensor([-2**31, 3], dtype=torch.int32),
        'i64': torch.tensor([-2**62, 4]), 'f64': torch.randn(3).double(), 'scalar': torch.tensor(3.5),
        'empty': torch.zeros(0, 3), 'expand': torch.ones(3).expand(2, 3),
        'bytes': b'\x00\x01abc\xff', 'empty_bytes': b'', 'tuple': (1, 'a', None, True, 2.5), 'big': 2**40,
        'neg': -2**63, 'str': 'r\u00e9snet \u2603 \U0001F600', 'nested': {'a': [1, [2, [3, {}]]]},
        'intkeys': {0: 'x', -1: 'y'}, 'od': OrderedDict(b=1, a=2)}


def plain():
    shared = [1, 2]
    return {
        'int': 1, 'neg': -7, 'big': 2**40, 'maxint': 2**63 - 1, 'minint': -2**63, 'float': 0.1, 'negfloat': -1e300,
        'str': 'r\u00e9snet \u2603 \U0001F600 \\ \n \r \x00', 'bytes': b'\x00\xff\\', 'empty_bytes': b'',
        'list': [1, 2, [3]], 'tuple1': (1,), 'tuple2': (1, 2), 'tuple3': (1, 2, 3), 'tuple5': (1, 2, 3, 4, 5),
        'empty': [], 'empty_tuple': (), 'none': None, 't': True, 'f': False, 'od': OrderedDict(z=1, y=[2]),
        'shared': [shared, shared], 'intkeys': {0: {'x': 1}, 300: 'y', -70000: 'z'}}


class MyNet(torch.nn.Module):
    """A model class of the user's own: pickled as __main__.MyNet, which must stay refused."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(2, 2)


def whole_models():
    """(name, module or container holding modules, what torch.load(...) gives as state_dicts, kw)."""
    resnet, alexnet = models()
    for m in resnet.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.num_batches_tracked.fill_(5)
    small = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 2, bias=False), torch.nn.BatchNorm2d(2), torch.nn.ReLU(),
                                torch.nn.Flatten(), torch.nn.Linear(2, 3))
    small[4].register_buffer('scratch', torch.ones(1), persistent=False)  # left out of state_dict
    small[4].register_buffer('kept', torch.arange(3.))
    shared = torch.nn.Linear(2, 2)
    tied = torch.nn.Sequential(shared, torch.nn.ReLU(), shared)  # one module under two names
    head = torchvision.models.resnet18(num_classes=7)
    head.fc = torch.nn.Linear(512, 5)
    parallel = torch.nn.DataParallel(torch.nn.Sequential(torch.nn.Linear(2, 2)))  # CPU: no devices kept
    return [
        ('resnet18_whole', resnet, resnet.state_dict(), {}),
        ('alexnet_whole', alexnet, alexnet.state_dict(), {}),
        ('small_whole_p1', small, small.state_dict(), {'pickle_protocol': 1}),
        ('small_whole_p2', small, small.state_dict(), {}),
        ('small_whole_p4', small, small.state_dict(), {'pickle_protocol': 4}),
        ('tied_whole', tied, tied.state_dict(), {}),
        ('head_whole', head, head.state_dict(), {}),
        ('parallel_whole', parallel, parallel.state_dict(), {}),
        ('checkpoint_whole', {'epoch': 2, 'model': small, 'arch': 'small'},
         {'epoch': 2, 'model': small.state_dict(), 'arch': 'small'}, {}),
    ]


def main(out):
    os.makedirs(out, exist_ok=True)
    expected = {'loads': [], 'rejects': [], 'truncate': [], 'fuzz': []}

    def write(name, data):
        with open(os.path.join(out, name), 'wb') as f:
            f.write(data)
        return name

    def load(name, obj, kind, expect=None, **kw):
        path = os.path.join(out, name)
        entry = {'name': name, 'kind': kind, 'file': name}
        if kind == 'zip':
            torch.save(obj, path, **kw)
            entry['path'] = os.path.relpath(extract_zip(path), out)
        elif kind == 'legacy':
            torch.save(obj, path, _use_new_zipfile_serialization=False, **kw)
            entry['path'] = name
        else:
            entry['path'] = write(name, pickle.dumps(obj, **kw))
        entry['nodes'] = walk(obj if expect is None else expect, '', [], {})
        expected['loads'].append(entry)
        return entry['path']

    def reject(name, data, expect, kind='pickle'):
        expected['rejects'].append({'name': name, 'kind': kind, 'path': write(name, data), 'expect': expect})

    resnet, alexnet = models()
    sd = resnet.state_dict()
    for name, state in (('resnet18', sd), ('alexnet', alexnet.state_dict())):
        load(name + '_zip.pt', state, 'zip')
        load(name + '_legacy.pt', state, 'legacy')
    ckpt = checkpoint()
    ckpt_pkl = load('checkpoint_zip.pt', ckpt, 'zip')
    load('checkpoint_legacy.pt', ckpt, 'legacy')
    load('dataparallel_zip.pt', OrderedDict(('module.' + k, v) for k, v in sd.items()), 'zip')
    for protocol in (1, 2, 3, 4, 5):
        misc_pkl = load('misc_p%d_zip.pt' % protocol, misc(), 'zip', pickle_protocol=protocol)
        expected['fuzz'].append({'kind': 'pickle', 'path': os.path.join(misc_pkl, 'data.pkl')})
    misc_legacy = load('misc_legacy.pt', misc(), 'legacy')
    for protocol in range(6):
        load('plain_p%d.pkl' % protocol, plain(), 'pickle', protocol=protocol)
        load('set_p%d.pkl' % protocol, {'s': {1, 2}, 'f': frozenset(['a']), 'e': set()}, 'pickle', protocol=protocol)

    # Whole pickled models (torch.save(model)): read as their state_dict, without running anything.
    for name, obj, state, kw in whole_models():
        whole = load(name + '_zip.pt', obj, 'zip', expect=state, **kw)
        if name.startswith('small'):
            expected['fuzz'].append({'kind': 'pickle', 'path': os.path.join(whole, 'data.pkl')})
    for name, obj, state, kw in whole_models()[:3]:
        load(name + '_legacy.pt', obj, 'legacy', expect=state, **kw)

    tiny = {'a': torch.tensor([1., 2., 3.]), 'b': torch.tensor([[1, 2], [3, 4]])}
    tiny_pkl = os.path.join(load('tiny_zip.pt', tiny, 'zip'), 'data.pkl')
    tiny_legacy = load('tiny_legacy.pt', tiny, 'legacy')
    for kind, path in (('legacy', tiny_legacy), ('pickle', tiny_pkl)):
        expected['truncate'].append({'kind': kind, 'path': path})
    expected['fuzz'] += [{'kind': 'legacy', 'path': tiny_legacy}, {'kind': 'pickle', 'path': tiny_pkl},
                         {'kind': 'legacy', 'path': misc_legacy},
                         {'kind': 'pickle', 'path': os.path.join(ckpt_pkl, 'data.pkl')}]

    # Code execution attempts: each must be refused, naming the global.
    shell = Reduce(os.system, ('echo pwned',))
    reject('evil_os_p2.pkl', pickle.dumps(shell, protocol=2), 'posix.system')
    reject('evil_os_p0.pkl', pickle.dumps(shell, protocol=0), 'posix.system')
    reject('evil_eval_p2.pkl', pickle.dumps(Reduce(eval, ('1+1',)), protocol=2), '__builtin__.eval')
    reject('evil_eval_p4.pkl', pickle.dumps(Reduce(eval, ('1+1',)), protocol=4), 'builtins.eval')
    reject('evil_popen_p3.pkl', pickle.dumps(Reduce(subprocess.Popen, (['true'],)), protocol=3), 'subprocess.Popen')
    reject('evil_popen_p2.pkl', pickle.dumps(Reduce(subprocess.Popen, (['true'],)), protocol=2), 'commands.Popen')
    reject('evil_nt_system.pkl', b'\x80\x02cnt\nsystem\nX\x03\x00\x00\x00dir\x85R.', 'nt.system')
    evil_zip = os.path.join(out, 'evil_zip.pt')
    torch.save({'w': torch.ones(2), 'evil': shell}, evil_zip)
    with open(os.path.join(extract_zip(evil_zip), 'data.pkl'), 'rb') as f:
        reject('evil_zip_data.pkl', f.read(), 'posix.system')
    resave = 'torch.save(model.state_dict(), path)'
    for protocol in (2, 4):
        mine = os.path.join(out, 'mynet_p%d.pt' % protocol)
        torch.save(MyNet(), mine, pickle_protocol=protocol)
        with open(os.path.join(extract_zip(mine), 'data.pkl'), 'rb') as f:
            data = f.read()
        reject('mynet_p%d.pkl' % protocol, data, '__main__.MyNet')
        reject('mynet_resave_p%d.pkl' % protocol, data, resave)
    armed = torch.nn.Linear(2, 2)
    armed.hook = shell  # a module attribute that would run code
    armed_zip = os.path.join(out, 'module_attr_os.pt')
    torch.save(armed, armed_zip)
    with open(os.path.join(extract_zip(armed_zip), 'data.pkl'), 'rb') as f:
        reject('module_attr_os.pkl', f.read(), 'posix.system')
    reject('module_args.pkl', b'\x80\x02ctorch.nn.modules.linear\nLinear\nK\x02K\x02\x86\x81.', resave)
    reject('bigint.pkl', pickle.dumps(2**64, protocol=2), 'does not fit in 64 bits')

    # Nesting far past maxDepth, built the four ways a pickle can nest containers.
    n = 100000
    reject('deep_list.pkl', b'\x80\x02' + b']' * n + b'a' * (n - 1) + b'.', 'nested deeper')
    reject('deep_mark.pkl', b'(' * n + b'l' * n + b'.', 'nested deeper')
    reject('deep_tuple.pkl', b'N' + b'\x85' * n + b'.', 'nested deeper')
    reject('deep_dict.pkl', (b'}X\x01\x00\x00\x00k') * n + b'}' + b's' * n + b'.', 'nested deeper')

    # Broken legacy files: the five pickles are spliced.
    with open(os.path.join(out, tiny_legacy), 'rb') as f:
        data = f.read()
    ends = legacy_pickle_ends(data)
    count_at = ends[4]
    bad_count = struct.pack('<q', struct.unpack_from('<q', data, count_at)[0] + 1)
    big_endian = {'protocol_version': 1001, 'little_endian': False, 'type_sizes': {'short': 2, 'int': 4, 'long': 8}}
    reject('legacy_bad_magic.pt', data[:5] + bytes([data[5] ^ 1]) + data[6:], 'bad magic number', 'legacy')
    reject('legacy_bad_version.pt', data[:ends[0]] + pickle.dumps(1002, protocol=2) + data[ends[1]:],
           'unsupported protocol version', 'legacy')
    reject('legacy_big_endian.pt', data[:ends[1]] + pickle.dumps(big_endian, protocol=2) + data[ends[2]:],
           'big-endian', 'legacy')
    reject('legacy_bad_count.pt', data[:count_at] + bad_count + data[count_at + 8:],
           'elements but its tensors were saved with', 'legacy')
    reject('legacy_is_zip.pt', open(os.path.join(out, 'tiny_zip.pt'), 'rb').read(), 'bad magic number', 'legacy')

    with open(os.path.join(out, 'expected.json'), 'w') as f:
        json.dump(expected, f, indent=1)
    print('make_fixtures: %d loads, %d rejects in %s' % (len(expected['loads']), len(expected['rejects']), out))


def roundtrip_expected():
    """What formats_selftest's roundTripTrees() builds, as torch.load should return it."""
    s0 = torch.tensor([-1, -0.5, 0, 0.5, 1, 1.5])
    s1 = torch.tensor([10., 11., 12.])
    big = torch.tensor([[0.25, 0.5], [0.75, 1.0]])
    weights = OrderedDict([
        ('a.weight', s0.view(2, 3)), ('a.bias', s1), ('steps', torch.tensor(7)),
        ('half', torch.tensor([1, 2, -2, 0.5], dtype=torch.float16)),
        ('mask', torch.tensor([True, False, True, True, False])), ('view', s0[3:]), ('t', s0.view(2, 3).t()),
        ('bf16', torch.tensor([1, -1.5], dtype=torch.bfloat16)),
        ('i32', torch.tensor([-1, 0, 2**31 - 1], dtype=torch.int32)),
        ('i16', torch.tensor([-32768, 5], dtype=torch.int16)), ('i8', torch.tensor([-128, 127], dtype=torch.int8)),
        ('u8', torch.tensor([0, 128, 255], dtype=torch.uint8)), ('f64', torch.tensor([0.1, -2.5], dtype=torch.float64)),
        ('empty', torch.zeros(0)), ('param', s1.clone().requires_grad_(True)), ('big', big),
        ('expand', s1.expand(4, 3))])
    ints = [0, 255, 256, 65535, 65536, -1, -129, 2**31 - 1, 2**31, -2**31, -2**31 - 1, 2**40, -2**63, 2**63 - 1]
    weights_tree = {
        'weights': weights, 'epoch': 3, 'ints': ints, 'name': 'r\u00e9snet \u2603 \U0001F600', 'flag': True,
        'off': False, 'nothing': None, 'pair': (1, 'x'), 'tuple4': (1, 2, 3, 4), 'empty_tuple': (),
        'list': [0, 1, [2, []]], 'optimizer': {'state': {0: {'momentum_buffer': big}}, 'param_groups': [{'params': [0, 1]}]}}
    full_tree = dict(weights_tree, lr=0.125, neg_zero=-0.0, blob=b'\x00\xff abc', empty_blob=b'')
    return full_tree, weights_tree


def same(got, want, path='root'):
    if isinstance(want, torch.Tensor):
        assert isinstance(got, torch.Tensor), path
        for attr in ('dtype', 'shape', 'requires_grad'):
            assert getattr(got, attr) == getattr(want, attr), '%s: %s %r != %r' % (path, attr, getattr(got, attr), getattr(want, attr))
        assert got.stride() == want.stride() and got.storage_offset() == want.storage_offset(), path
        assert torch.equal(got.detach(), want.detach()), '%s: %r != %r' % (path, got, want)
    elif isinstance(want, dict):
        assert isinstance(got, dict) and isinstance(got, OrderedDict) == isinstance(want, OrderedDict), path
        assert list(got.keys()) == list(want.keys()), '%s: keys %r != %r' % (path, list(got), list(want))
        for k in want:
            same(got[k], want[k], '%s/%s' % (path, k))
    elif isinstance(want, (list, tuple)):
        assert type(got) is type(want) and len(got) == len(want), '%s: %r != %r' % (path, got, want)
        for i, (g, w) in enumerate(zip(got, want)):
            same(g, w, '%s/[%d]' % (path, i))
    elif isinstance(want, float):
        assert type(got) is float and struct.pack('<d', got) == struct.pack('<d', want), '%s: %r != %r' % (path, got, want)
    else:
        assert type(got) is type(want) and got == want, '%s: %r != %r' % (path, got, want)


def check_roundtrip(d):
    full_tree, weights_tree = roundtrip_expected()
    storages = os.path.join(d, 'storages')
    for name, want in (('full', full_tree), ('weights', weights_tree)):
        path = os.path.join(d, name + '.pt')
        with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as z:
            with open(os.path.join(d, name + '.pkl'), 'rb') as f:
                z.writestr('archive/data.pkl', f.read())
            for key in sorted(os.listdir(storages)):
                with open(os.path.join(storages, key), 'rb') as f:
                    z.writestr('archive/data/' + key, f.read())
            z.writestr('archive/version', '3\n')
        modes = [False, True] if name == 'weights' else [False]  # 1.13's weights_only has no BINFLOAT
        for weights_only in modes:
            got = torch.load(path, weights_only=weights_only)
            same(got, want)
            w = got['weights']
            ptr = lambda k: w[k].storage().data_ptr()
            assert ptr('a.weight') == ptr('view') == ptr('t'), 'views must share a storage'
            assert ptr('a.bias') == ptr('param') == ptr('expand'), 'tensors of one key must share a storage'
            assert got['optimizer']['state'][0]['momentum_buffer'].storage().data_ptr() == ptr('big')
            print('roundtrip: torch %s loads %s.pt%s: OK' % (torch.__version__, name,
                                                               ' with weights_only=True' if weights_only else ''))


if __name__ == '__main__':
    if len(sys.argv) == 3 and sys.argv[1] == '--check-roundtrip':
        check_roundtrip(sys.argv[2])
    elif len(sys.argv) == 2:
        main(sys.argv[1])
    else:
        sys.exit(__doc__)
