# PyTorch's eager-mode static quantization of torchvision's quantizable ResNet-18 or AlexNet on the
# float weights finetorch quantizes: fuse_modules -> prepare -> calibrate -> convert, with
# get_default_qconfig(engine) (HistogramObserver) or its MinMaxObserver variant. Writes the
# quantized values under finetorch's state names, the int8 and float logits, and (with --time)
# int8 and float throughput (median of the timed forwards).
# usage: quantized-reference.py WEIGHTS_PTH INPUTS_PTH OUT_PTH ENGINE OBSERVER THREADS [ARCH]
# INPUTS_PTH: {'calibration': [batches], 'x': batch}
import sys, time
import torch, torchvision
from torch.ao.quantization import QConfig, MinMaxObserver, get_default_qconfig, prepare, convert, fuse_modules
import torch.ao.nn.quantized as nnq

weights, inputs, out, engine, observer, threads = sys.argv[1:7]
arch = sys.argv[7] if len(sys.argv) > 7 else 'resnet18'
torch.set_num_threads(int(threads))
torch.backends.quantized.engine = engine
state = torch.load(weights)
data = torch.load(inputs)
num_classes = state['fc.weight' if arch == 'resnet18' else 'classifier.6.weight'].shape[0]

class QuantAlexNet(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.quant, self.dequant = torch.ao.quantization.QuantStub(), torch.ao.quantization.DeQuantStub()
        self.features, self.avgpool, self.classifier = net.features, net.avgpool, net.classifier
    def forward(self, x):
        x = self.features(self.quant(x))
        x = torch.flatten(self.avgpool(x), 1)
        return self.dequant(self.classifier(x))

if arch == 'resnet18':
    model = torchvision.models.quantization.resnet18(weights=None, quantize=False, num_classes=num_classes)
    model.load_state_dict(state)
    model.eval()
    float_model = torchvision.models.resnet18(num_classes=num_classes).eval()
    float_model.load_state_dict(state)
    model.fuse_model(is_qat=False)
else:
    float_model = torchvision.models.alexnet(num_classes=num_classes).eval()
    float_model.load_state_dict(state)
    import copy
    model = QuantAlexNet(copy.deepcopy(float_model)).eval()
    fuse_modules(model, [['features.0', 'features.1'], ['features.3', 'features.4'], ['features.6', 'features.7'],
                         ['features.8', 'features.9'], ['features.10', 'features.11'],
                         ['classifier.1', 'classifier.2'], ['classifier.4', 'classifier.5']], inplace=True)

default = get_default_qconfig(engine)
if observer == 'minmax':
    reduce_range = engine in ('x86', 'fbgemm')
    model.qconfig = QConfig(activation=MinMaxObserver.with_args(reduce_range=reduce_range), weight=default.weight)
else:
    model.qconfig = default
prepare(model, inplace=True)
with torch.no_grad():
    for batch in data['calibration']:
        model(batch)
convert(model, inplace=True)

refs = {}
for name, m in model.named_modules():
    prefix = name + '.'
    if isinstance(m, nnq.Quantize):
        refs[prefix + 'scale'] = torch.tensor(float(m.scale), dtype=torch.float64)
        refs[prefix + 'zero_point'] = torch.tensor(int(m.zero_point), dtype=torch.int64)
    elif isinstance(m, (nnq.Conv2d, nnq.Linear)):
        w = m.weight()
        refs[prefix + 'weight'] = w.int_repr()
        refs[prefix + 'weight_scale'] = w.q_per_channel_scales().to(torch.float64)
        refs[prefix + 'bias'] = m.bias().detach()
        refs[prefix + 'scale'] = torch.tensor(float(m.scale), dtype=torch.float64)
        refs[prefix + 'zero_point'] = torch.tensor(int(m.zero_point), dtype=torch.int64)
    elif isinstance(m, nnq.QFunctional):
        refs[prefix + 'scale'] = torch.tensor(float(m.scale), dtype=torch.float64)
        refs[prefix + 'zero_point'] = torch.tensor(int(m.zero_point), dtype=torch.int64)
result = {'state': refs}
with torch.no_grad():
    if 'x' in data:
        result['logits'] = model(data['x'])
        result['float_logits'] = float_model(data['x'])
    if 'eval' in data:  # a list of batches: int8 and float logits of each
        result['eval_logits'] = [model(b) for b in data['eval']]
        result['eval_float_logits'] = [float_model(b) for b in data['eval']]
    if 'time' in data:  # a batch, timed time_iterations times after 2 warm-up forwards: img/s, int8 then float
        x = data['time']
        speeds = []
        for net in (model, float_model):
            for _ in range(2): net(x)
            times = []
            for _ in range(int(data['time_iterations'])):
                t = time.perf_counter(); net(x); times.append(time.perf_counter() - t)
            speeds.append(x.shape[0] / sorted(times)[len(times) // 2])  # the median
        result['speed'] = torch.tensor(speeds, dtype=torch.float64)
torch.save(result, out)
print('ok')
