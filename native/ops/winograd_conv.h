// 3x3 stride-1 convolutions of a training step through oneDNN's f32 Winograd F(4x4, 3x3)
// (jit_avx512_core_f32_wino_conv_4x3: forward, backward-data and backward-weights), which ATen
// never asks for. On this kind of CPU it does ResNet-18's 3x3 convolutions 1.5-2x faster than the
// direct kernels ATen uses; the results differ from direct convolution by Winograd's rounding
// (relative ~1e-6..1e-5 in fp32), as cuDNN's Winograd algorithms do on a GPU.
//
// Only in builds against a libtorch that links a shared oneDNN 2.x with its headers present
// (Debian's libtorch-dev + libdnnl-dev): oneDNN 3.2 removed these kernels. Elsewhere, and on CPUs
// without AVX-512, winogradSupport() says why and convolutions stay direct.
#pragma once

#include <memory>
#include <string>

#include <torch/nn.h>

namespace finetorch {

// Whether this build and CPU can run the Winograd kernels; `reason` says why not.
struct WinogradSupport {
  bool available = false;
  std::string reason;
};
WinogradSupport winogradSupport();

// A network's choice, shared by its blocks: `winograd` is read at every forward.
struct ConvolutionChoice {
  bool winograd = false;
};

// conv->forward(x), through Winograd when `choice` asks for it and the call qualifies: a CPU fp32
// training forward (grad mode on and x or the weight requiring grad, no autocast) of a 3x3,
// stride 1, padding 1, ungrouped, bias-free convolution with channel counts divisible by 16, on
// maps large enough for Winograd to win (worthIt in the .cc, measured per shape). Anything else
// (eval, inference, small maps) is conv->forward(x) unchanged.
torch::Tensor convolve(torch::nn::Conv2dImpl& conv, const torch::Tensor& x, const ConvolutionChoice* choice);

}  // namespace finetorch
