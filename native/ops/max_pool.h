// Max pooling that runs libtorch's channels-last kernel on the CPU, whatever the input's layout.
// libtorch's CPU kernel for NCHW (1.13) walks each plane with scalar code; its NHWC kernel is
// vectorised across channels. On 2 cores, ResNet's stem pool (32x64x56x56, 3/2/1) takes 26.8 ms in
// NCHW and 2.6 ms in NHWC plus 6.5 ms for the two layout copies. Values, indices and so gradients are
// the same: both kernels scan a window in the same order and keep the first maximum (or NaN).
#pragma once

#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

namespace finetorch {

inline torch::Tensor maxPool2d(const torch::Tensor& x, int64_t kernel, int64_t stride, int64_t padding) {
  bool nchwOnCpu = x.device().is_cpu() && x.dim() == 4 && x.is_contiguous() && !x.is_contiguous(at::MemoryFormat::ChannelsLast);
  if (!nchwOnCpu) return torch::max_pool2d(x, kernel, stride, padding);
  // the result goes back to NCHW so the layers after the pool see the layout they were given
  return torch::max_pool2d(x.contiguous(at::MemoryFormat::ChannelsLast), kernel, stride, padding).contiguous();
}

// nn::MaxPool2d's place in a Sequential (AlexNet, VGG), computed by maxPool2d().
class MaxPool2dImpl : public torch::nn::Cloneable<MaxPool2dImpl> {
 public:
  MaxPool2dImpl(int64_t kernel, int64_t stride, int64_t padding = 0)
      : torch::nn::Cloneable<MaxPool2dImpl>("finetorch::MaxPool2d"), kernel_(kernel), stride_(stride), padding_(padding) {}
  void reset() override {}
  torch::Tensor forward(const torch::Tensor& x) { return maxPool2d(x, kernel_, stride_, padding_); }

 private:
  int64_t kernel_, stride_, padding_;
};
TORCH_MODULE(MaxPool2d);

}  // namespace finetorch
