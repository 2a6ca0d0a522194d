// An int8 network built from a float finetorch Net: BatchNorms folded, observers calibrated on
// float batches, then libtorch's quantized kernels (eager-mode static quantization, as
// torch.ao.quantization.prepare/convert produce for torchvision's quantizable models).
#pragma once

#include <memory>
#include <string>

#include <torch/types.h>

#include "models/net.h"
#include "quantized/layers.h"

namespace finetorch::quantized {

struct QuantizeOptions {
  std::string arch;
  std::string engine;    // the quantized engine selected (engine.h)
  std::string observer;  // activation observer kind: histogram or minmax
};

class QuantizedNet {
 public:
  virtual ~QuantizedNet() = default;
  // Float forward with observers recording; only before finalize().
  virtual void calibrate(const torch::Tensor& images) = 0;
  // Observers become scales and zero points, weights become packed int8.
  virtual void finalize() = 0;
  // The quint8 codes the first layer reads (the QuantStub's output), channels-last.
  virtual torch::Tensor quantizeInput(const torch::Tensor& images) const = 0;
  // Float images in, float logits out, int8 in between.
  virtual torch::Tensor forward(const torch::Tensor& images) const = 0;
  virtual NamedTensors state() const = 0;
  // Replaces every quantized value with `state`'s (a map state() wrote); throws naming what is wrong.
  virtual void loadState(const NamedTensors& state) = 0;
};

// `net` supplies the float weights (and, for a net about to loadState, just the shapes).
std::unique_ptr<QuantizedNet> buildQuantizedNet(Net& net, const QuantizeOptions& options);

std::unique_ptr<QuantizedNet> buildQuantizedResNet(const NamedTensors& weights, const QuantizeOptions& options);
std::unique_ptr<QuantizedNet> buildQuantizedAlexNet(const NamedTensors& weights, const QuantizeOptions& options);

}  // namespace finetorch::quantized
