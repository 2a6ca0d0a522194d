// The JS Tensor: owns one torch::Tensor until dispose() or garbage collection.
#pragma once

#include <torch/types.h>
#include <napi.h>

namespace finetorch {

class TensorWrap : public Napi::ObjectWrap<TensorWrap> {
 public:
  static Napi::Function define(Napi::Env env);
  // A new JS Tensor that owns `tensor`.
  static Napi::Object wrap(Napi::Env env, torch::Tensor tensor);
  // The tensor behind a JS value; a clear error for non-tensors and disposed tensors.
  static const torch::Tensor& unwrap(Napi::Value value, const char* argumentName);
  static bool isTensor(Napi::Env env, Napi::Value value);

  explicit TensorWrap(const Napi::CallbackInfo& info);
  ~TensorWrap() override;

 private:
  Napi::Value shape(const Napi::CallbackInfo& info);
  Napi::Value dtype(const Napi::CallbackInfo& info);
  Napi::Value device(const Napi::CallbackInfo& info);
  Napi::Value requiresGrad(const Napi::CallbackInfo& info);
  Napi::Value disposed(const Napi::CallbackInfo& info);
  Napi::Value byteLength(const Napi::CallbackInfo& info);
  Napi::Value toTypedArray(const Napi::CallbackInfo& info);
  Napi::Value toBytes(const Napi::CallbackInfo& info);
  Napi::Value to(const Napi::CallbackInfo& info);
  Napi::Value clone(const Napi::CallbackInfo& info);
  Napi::Value dispose(const Napi::CallbackInfo& info);

  const torch::Tensor& live(Napi::Env env) const;
  void adopt(torch::Tensor tensor);
  void release();

  torch::Tensor tensor_;
  bool live_ = false;
  int64_t accountedBytes_ = 0;  // reported to V8 so the GC feels native memory
  napi_env env_ = nullptr;
};

}  // namespace finetorch
