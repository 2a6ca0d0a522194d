#include "quantized/quantized_net.h"

#include <stdexcept>

namespace finetorch::quantized {

std::unique_ptr<QuantizedNet> buildQuantizedNet(Net& net, const QuantizeOptions& options) {
  NamedTensors weights;
  for (auto& p : net.named_parameters()) weights[p.key()] = p.value().detach().to(torch::kCPU, torch::kFloat);
  for (auto& b : net.named_buffers()) weights[b.key()] = b.value().detach().to(torch::kCPU);
  if (options.arch == "resnet18" || options.arch == "resnet34" || options.arch == "resnet50") {
    if (stateEntry(weights, "fc.weight").dim() != 2) {
      throw std::invalid_argument("int8 quantization supports the 'linear' head of ResNets, not 'conv1x1'");
    }
    return buildQuantizedResNet(weights, options);
  }
  if (options.arch == "alexnet") return buildQuantizedAlexNet(weights, options);
  throw std::invalid_argument("int8 quantization supports resnet18, resnet34, resnet50 and alexnet, not " + options.arch);
}

}  // namespace finetorch::quantized
