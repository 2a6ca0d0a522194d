// The JS Model: one network (models/net.h) with its training-mode bookkeeping.
#pragma once

#include <memory>
#include <set>
#include <string>

#include <napi.h>

#include "models/net.h"

namespace finetorch {

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::Function define(Napi::Env env);
  static std::shared_ptr<Net> unwrap(Napi::Value value, const char* argumentName);
  explicit ModelWrap(const Napi::CallbackInfo& info);

 private:
  Napi::Value forward(const Napi::CallbackInfo& info);
  Napi::Value features(const Napi::CallbackInfo& info);
  Napi::Value classify(const Napi::CallbackInfo& info);
  Napi::Value setTraining(const Napi::CallbackInfo& info);
  Napi::Value training(const Napi::CallbackInfo& info);
  Napi::Value namedModules(const Napi::CallbackInfo& info);
  Napi::Value namedParameters(const Napi::CallbackInfo& info);
  Napi::Value namedBuffers(const Napi::CallbackInfo& info);
  Napi::Value stateDict(const Napi::CallbackInfo& info);
  Napi::Value setRequiresGrad(const Napi::CallbackInfo& info);
  Napi::Value loadStateDict(const Napi::CallbackInfo& info);
  Napi::Value backward(const Napi::CallbackInfo& info);
  Napi::Value namedGradients(const Napi::CallbackInfo& info);
  Napi::Value to(const Napi::CallbackInfo& info);
  Napi::Value setChannelsLast(const Napi::CallbackInfo& info);
  Napi::Value setConvAlgorithm(const Napi::CallbackInfo& info);
  Napi::Value nonFinite(const Napi::CallbackInfo& info);
  Napi::Value device(const Napi::CallbackInfo& info);
  Napi::Value headPrefix(const Napi::CallbackInfo& info);
  Napi::Value featureDim(const Napi::CallbackInfo& info);
  Napi::Value disposed(const Napi::CallbackInfo& info);
  Napi::Value dispose(const Napi::CallbackInfo& info);

  Napi::Value run(const Napi::CallbackInfo& info, torch::Tensor (*step)(Net&, const torch::Tensor&));
  std::shared_ptr<Net> live(Napi::Env env) const;

  std::shared_ptr<Net> net_;
};

}  // namespace finetorch
