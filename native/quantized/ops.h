// libtorch's int8 kernels (the quantized:: operators torch.ao.nn.quantized calls), reached through
// the dispatcher: their packed-weight classes are TorchScript custom classes with no public C++
// header in every libtorch, so packed weights travel as IValues.
#pragma once

#include <vector>

#include <ATen/core/ivalue.h>
#include <torch/types.h>

namespace finetorch::quantized::ops {

// weight: qint8 per-channel [out, in/groups, kh, kw]; bias: float32 [out] or undefined.
c10::IValue conv2dPrepack(const torch::Tensor& weight, const torch::Tensor& bias, const std::vector<int64_t>& stride,
                          const std::vector<int64_t>& padding, const std::vector<int64_t>& dilation, int64_t groups);
torch::Tensor conv2d(const torch::Tensor& qx, const c10::IValue& packed, double scale, int64_t zeroPoint);
torch::Tensor conv2dRelu(const torch::Tensor& qx, const c10::IValue& packed, double scale, int64_t zeroPoint);

c10::IValue linearPrepack(const torch::Tensor& weight, const torch::Tensor& bias);
torch::Tensor linear(const torch::Tensor& qx, const c10::IValue& packed, double scale, int64_t zeroPoint);
torch::Tensor linearRelu(const torch::Tensor& qx, const c10::IValue& packed, double scale, int64_t zeroPoint);

torch::Tensor addRelu(const torch::Tensor& qa, const torch::Tensor& qb, double scale, int64_t zeroPoint);

}  // namespace finetorch::quantized::ops
