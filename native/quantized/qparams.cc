#include "quantized/qparams.h"

#include <limits>

#include <ATen/ATen.h>

namespace finetorch::quantized {

namespace {

const float kEps = std::numeric_limits<float>::epsilon();

}  // namespace

QParams affineQParams(const torch::Tensor& minVal, const torch::Tensor& maxVal, int64_t quantMin, int64_t quantMax) {
  auto minNeg = at::minimum(minVal, at::zeros_like(minVal));
  auto maxPos = at::maximum(maxVal, at::zeros_like(maxVal));
  auto scale = (maxPos - minNeg) / static_cast<double>(quantMax - quantMin);
  scale = at::maximum(scale, at::full_like(scale, kEps));
  auto zeroPoint = quantMin - at::round(minNeg / scale).to(at::kInt);
  zeroPoint = at::clamp(zeroPoint, quantMin, quantMax);
  return {static_cast<double>(scale.item<float>()), zeroPoint.item<int64_t>()};
}

torch::Tensor quantizeWeightPerChannel(const torch::Tensor& weight) {
  auto flat = weight.detach().reshape({weight.size(0), -1});
  auto [minVal, maxVal] = at::aminmax(flat, 1);
  auto minNeg = at::minimum(minVal, at::zeros_like(minVal));
  auto maxPos = at::maximum(maxVal, at::zeros_like(maxVal));
  maxPos = at::maximum(-minNeg, maxPos);
  auto scale = maxPos / ((127.0 - -128.0) / 2);
  scale = at::maximum(scale, at::full_like(scale, kEps));
  auto zeroPoints = at::zeros({weight.size(0)}, at::kLong);
  return at::quantize_per_channel(weight.detach().contiguous(), scale.to(at::kDouble), zeroPoints, 0, at::kQInt8);
}

}  // namespace finetorch::quantized
