#include "quantized/ops.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>

namespace finetorch::quantized::ops {

namespace {

c10::IValue callOne(const char* name, const char* overload, torch::jit::Stack stack) {
  // The registry lives as long as the process; the handle lookup is a hash probe per call.
  auto op = c10::Dispatcher::singleton().findSchemaOrThrow(name, overload);
  op.callBoxed(&stack);
  return std::move(stack.at(0));
}

c10::optional<torch::Tensor> optional(const torch::Tensor& t) {
  return t.defined() ? c10::optional<torch::Tensor>(t) : c10::nullopt;
}

}  // namespace

c10::IValue conv2dPrepack(const torch::Tensor& weight, const torch::Tensor& bias, const std::vector<int64_t>& stride,
                          const std::vector<int64_t>& padding, const std::vector<int64_t>& dilation, int64_t groups) {
  return callOne("quantized::conv2d_prepack", "",
                 {weight, optional(bias), c10::List<int64_t>(stride), c10::List<int64_t>(padding),
                  c10::List<int64_t>(dilation), groups});
}

torch::Tensor conv2d(const torch::Tensor& qx, const c10::IValue& packed, double scale, int64_t zeroPoint) {
  return callOne("quantized::conv2d", "new", {qx, packed, scale, zeroPoint}).toTensor();
}

torch::Tensor conv2dRelu(const torch::Tensor& qx, const c10::IValue& packed, double scale, int64_t zeroPoint) {
  return callOne("quantized::conv2d_relu", "new", {qx, packed, scale, zeroPoint}).toTensor();
}

c10::IValue linearPrepack(const torch::Tensor& weight, const torch::Tensor& bias) {
  return callOne("quantized::linear_prepack", "", {weight, optional(bias)});
}

torch::Tensor linear(const torch::Tensor& qx, const c10::IValue& packed, double scale, int64_t zeroPoint) {
  return callOne("quantized::linear", "", {qx, packed, scale, zeroPoint}).toTensor();
}

torch::Tensor linearRelu(const torch::Tensor& qx, const c10::IValue& packed, double scale, int64_t zeroPoint) {
  return callOne("quantized::linear_relu", "", {qx, packed, scale, zeroPoint}).toTensor();
}

torch::Tensor addRelu(const torch::Tensor& qa, const torch::Tensor& qb, double scale, int64_t zeroPoint) {
  return callOne("quantized::add_relu", "", {qa, qb, scale, zeroPoint}).toTensor();
}

}  // namespace finetorch::quantized::ops
