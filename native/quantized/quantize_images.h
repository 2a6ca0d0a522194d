// The network's input quantization (QuantStub): float images to quint8 codes, equal to
// at::quantize_per_tensor's, but on both threads and vectorized. Debian's libtorch (no fbgemm)
// quantizes with a scalar single-threaded loop that took 19% of an int8 ResNet-18 forward.
#pragma once

#include <torch/types.h>

#include "quantized/qparams.h"

namespace finetorch::quantized {

// `images` float32 [N, C, H, W] in any layout; the result is quint8 in channels-last, the layout
// oneDNN's quantized convolutions compute in (an NCHW input is reordered inside the first one).
torch::Tensor quantizeImages(const torch::Tensor& images, const QParams& qparams);

}  // namespace finetorch::quantized
