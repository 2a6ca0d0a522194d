// Per-environment state of the addon (no C++ globals): constructors and the compute queue.
#pragma once

#include <memory>

#include <napi.h>

#include "compute_queue.h"

namespace finetorch {

class Addon : public Napi::Addon<Addon> {
 public:
  Addon(Napi::Env env, Napi::Object exports);

  static Addon& of(Napi::Env env) { return *env.GetInstanceData<Addon>(); }

  ComputeQueue& queue() { return *queue_; }

  Napi::FunctionReference tensorConstructor;
  Napi::FunctionReference modelConstructor;
  Napi::FunctionReference optimizerConstructor;
  Napi::FunctionReference processGroupConstructor;
  Napi::FunctionReference gradientSyncConstructor;

 private:
  std::unique_ptr<ComputeQueue> queue_;
};

// Each object type registers its class on `exports` and its constructor on the addon.
void registerTensor(Napi::Env env, Napi::Object exports, Addon& addon);
void registerTensorOps(Napi::Env env, Napi::Object exports, Addon& addon);
void registerRuntime(Napi::Env env, Napi::Object exports, Addon& addon);
void registerModel(Napi::Env env, Napi::Object exports, Addon& addon);
void registerSerialization(Napi::Env env, Napi::Object exports, Addon& addon);
void registerOptimizer(Napi::Env env, Napi::Object exports, Addon& addon);
void registerTraining(Napi::Env env, Napi::Object exports, Addon& addon);
void registerAugment(Napi::Env env, Napi::Object exports, Addon& addon);
void registerDistributed(Napi::Env env, Napi::Object exports, Addon& addon);

}  // namespace finetorch
