// The JS Optimizer: libtorch's SGD, Adam or AdamW over one model's parameters, in named groups.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <napi.h>
#include <torch/optim.h>

#include "models/net.h"

namespace finetorch {

class OptimizerWrap : public Napi::ObjectWrap<OptimizerWrap> {
 public:
  static Napi::Function define(Napi::Env env);
  static OptimizerWrap* unwrap(Napi::Value value, const char* argumentName);
  explicit OptimizerWrap(const Napi::CallbackInfo& info);

  std::shared_ptr<torch::optim::Optimizer> optimizer() const;
  // SGD as PyTorch's multi-tensor update (foreach) instead of libtorch's loop over parameters
  enum class Foreach { Off, On, Auto };  // Auto: on when the parameters are on a GPU, as in PyTorch 2.x
  Foreach foreach() const { return foreach_; }
  std::shared_ptr<Net> net() const { return net_; }

 private:
  Napi::Value getLr(const Napi::CallbackInfo& info);
  Napi::Value setLr(const Napi::CallbackInfo& info);
  Napi::Value groupCount(const Napi::CallbackInfo& info);
  Napi::Value stateEntries(const Napi::CallbackInfo& info);
  Napi::Value loadStateEntries(const Napi::CallbackInfo& info);
  Napi::Value dispose(const Napi::CallbackInfo& info);

  // The optimizer, or a JS Error when dispose() has run (never a null dereference).
  torch::optim::Optimizer& live(Napi::Env env) const;
  // The parameter group at `value`, range-checked.
  torch::optim::OptimizerParamGroup& group(Napi::Env env, Napi::Value value) const;

  std::string type_;
  Foreach foreach_ = Foreach::Auto;
  std::shared_ptr<Net> net_;
  std::shared_ptr<torch::optim::Optimizer> optimizer_;
  std::vector<torch::Tensor> ordered_;  // every parameter, group by group: PyTorch's state indices
};

// One optimizer step. With `foreach` (SGD only), PyTorch's _multi_tensor_sgd: the same arithmetic as
// libtorch's SGD::step, each operation issued once for all of a group's parameters
// (torch::_foreach_*), which on CUDA is a few fused kernels instead of ~190 small ones for
// ResNet-18. The state (momentum buffers) is libtorch's own, so stateEntries() sees it either way.
void optimizerStep(torch::optim::Optimizer& optimizer, OptimizerWrap::Foreach foreach);

}  // namespace finetorch
