// The JS QuantizedModel: an int8 network (quantized_net.h) built from a float Model by calibration,
// or loaded from its saved state. Every call that computes runs on the compute thread.
#pragma once

#include <memory>
#include <string>

#include <napi.h>

#include "addon.h"
#include "quantized/quantized_net.h"

namespace finetorch {

class QuantizedModelWrap : public Napi::ObjectWrap<QuantizedModelWrap> {
 public:
  static Napi::Function define(Napi::Env env);
  explicit QuantizedModelWrap(const Napi::CallbackInfo& info);

 private:
  // Touched on the compute thread only, in queue order.
  struct State {
    quantized::QuantizeOptions options;
    int64_t numClasses = 0;
    std::unique_ptr<quantized::QuantizedNet> net;
    int64_t calibrationImages = 0;
    bool ready = false;  // finalized or loaded: int8 inference only
  };

  Napi::Value build(const Napi::CallbackInfo& info);
  Napi::Value calibrate(const Napi::CallbackInfo& info);
  Napi::Value finalize(const Napi::CallbackInfo& info);
  Napi::Value forward(const Napi::CallbackInfo& info);
  Napi::Value quantizeInput(const Napi::CallbackInfo& info);
  Napi::Value state(const Napi::CallbackInfo& info);
  Napi::Value loadState(const Napi::CallbackInfo& info);
  Napi::Value engine(const Napi::CallbackInfo& info);
  Napi::Value disposed(const Napi::CallbackInfo& info);
  Napi::Value dispose(const Napi::CallbackInfo& info);

  std::shared_ptr<State> live(Napi::Env env) const;

  std::shared_ptr<State> state_;
};

void registerQuantizedModel(Napi::Env env, Napi::Object exports, Addon& addon);

}  // namespace finetorch
