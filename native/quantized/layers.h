// The quantized layers a network is assembled from. Each runs in two lives: calibration, where it
// computes in float32 and its observer records its output, then (after finalize) int8 inference.
// State names follow PyTorch's quantized modules (weight, bias, scale, zero_point), with the int8
// weight stored as its integer values plus `weight_scale` (per output channel, zero points 0).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/ivalue.h>
#include <torch/types.h>

#include "quantized/fuse.h"
#include "quantized/observer.h"

namespace finetorch::quantized {

using NamedTensors = std::map<std::string, torch::Tensor>;

// One activation point with its own quint8 parameters: the input's QuantStub, an add_relu.
class ActivationPoint {
 public:
  explicit ActivationPoint(std::unique_ptr<Observer> observer) : observer_(std::move(observer)) {}
  void observe(const torch::Tensor& x) { observer_->observe(x); }
  void finalize();
  const QParams& qparams() const { return qparams_; }
  void exportState(const std::string& prefix, NamedTensors& out) const;
  void importState(const std::string& prefix, const NamedTensors& in);

 private:
  std::unique_ptr<Observer> observer_;
  QParams qparams_;
};

// Conv2d with its BatchNorm folded in, optionally followed by ReLU: nnq.Conv2d / nniq.ConvReLU2d.
class QuantizedConv {
 public:
  QuantizedConv(FusedWeights weights, int64_t stride, int64_t padding, bool relu, std::unique_ptr<Observer> observer);
  torch::Tensor calibrate(const torch::Tensor& x);
  void finalize();
  torch::Tensor forward(const torch::Tensor& qx) const;
  void exportState(const std::string& prefix, NamedTensors& out) const;
  void importState(const std::string& prefix, const NamedTensors& in);

 private:
  void pack();
  FusedWeights weights_;  // float32, released by finalize/importState
  std::vector<int64_t> weightShape_;
  int64_t stride_, padding_;
  bool relu_;
  ActivationPoint output_;
  torch::Tensor qweight_, bias_;
  c10::IValue packed_;
};

// Linear, optionally followed by ReLU: nnq.Linear / nniq.LinearReLU.
class QuantizedLinear {
 public:
  QuantizedLinear(torch::Tensor weight, torch::Tensor bias, bool relu, std::unique_ptr<Observer> observer);
  torch::Tensor calibrate(const torch::Tensor& x);
  void finalize();
  torch::Tensor forward(const torch::Tensor& qx) const;
  void exportState(const std::string& prefix, NamedTensors& out) const;
  void importState(const std::string& prefix, const NamedTensors& in);

 private:
  void pack();
  torch::Tensor weight_, bias_;  // float32, released by finalize/importState
  std::vector<int64_t> weightShape_;
  bool relu_;
  ActivationPoint output_;
  torch::Tensor qweight_;
  c10::IValue packed_;
};

// Looks a name up in a state map, saying which name was missing.
const torch::Tensor& stateEntry(const NamedTensors& state, const std::string& name);

}  // namespace finetorch::quantized
