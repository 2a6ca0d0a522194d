#include "quantized/fuse.h"

#include <ATen/ATen.h>

namespace finetorch::quantized {

FusedWeights fuseConvBatchNorm(const torch::Tensor& convWeight, const torch::Tensor& convBias, const BatchNormState& bn) {
  at::NoGradGuard noGrad;
  auto bias = convBias.defined() ? convBias.detach() : at::zeros_like(bn.runningMean);
  auto varRsqrt = at::rsqrt(bn.runningVar + bn.eps);
  std::vector<int64_t> shape(convWeight.dim(), 1);
  shape[0] = -1;
  auto weight = convWeight.detach() * (bn.weight.detach() * varRsqrt).reshape(shape);
  auto fusedBias = (bias - bn.runningMean) * varRsqrt * bn.weight.detach() + bn.bias.detach();
  // contiguous NCHW: the fused weight is quantized and packed, whatever layout the model kept
  return {weight.contiguous(), fusedBias.contiguous()};
}

}  // namespace finetorch::quantized
