// Quantization parameters as PyTorch's observers compute them (torch.ao.quantization.observer,
// UniformQuantizationObserverBase._calculate_qparams), in float32 like PyTorch.
#pragma once

#include <cstdint>

#include <torch/types.h>

namespace finetorch::quantized {

struct QParams {
  double scale = 1.0;      // a float32 value, widened as PyTorch's float(scale) does
  int64_t zeroPoint = 0;
};

// quint8 per-tensor affine over [quantMin, quantMax] for observed values in [minVal, maxVal]
// (0-d float32 tensors).
QParams affineQParams(const torch::Tensor& minVal, const torch::Tensor& maxVal, int64_t quantMin, int64_t quantMax);

// Weights: qint8, symmetric per output channel (PerChannelMinMaxObserver, per_channel_symmetric),
// quantized the way _quantize_weight does.
torch::Tensor quantizeWeightPerChannel(const torch::Tensor& weight);

}  // namespace finetorch::quantized
