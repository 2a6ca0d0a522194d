// Folding an eval-mode BatchNorm into the convolution before it, as torch.nn.utils.fusion's
// fuse_conv_bn_weights does (and so torch.ao.quantization.fuse_modules).
#pragma once

#include <torch/types.h>

namespace finetorch::quantized {

struct BatchNormState {
  torch::Tensor weight, bias, runningMean, runningVar;
  double eps = 1e-5;
};

struct FusedWeights {
  torch::Tensor weight, bias;
};

// convBias may be undefined (no bias).
FusedWeights fuseConvBatchNorm(const torch::Tensor& convWeight, const torch::Tensor& convBias, const BatchNormState& bn);

}  // namespace finetorch::quantized
