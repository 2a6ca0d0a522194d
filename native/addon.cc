#include "addon.h"

#include <thread>

namespace finetorch {

Addon::Addon(Napi::Env env, Napi::Object exports) {
  // Debian's libtorch starts with one intra-op thread; use every core unless told otherwise.
  int cores = static_cast<int>(std::thread::hardware_concurrency());
  queue_ = std::make_unique<ComputeQueue>(env, cores > 0 ? cores : 1);
  registerTensor(env, exports, *this);
  registerRuntime(env, exports, *this);
  registerModel(env, exports, *this);
  registerSerialization(env, exports, *this);
  registerOptimizer(env, exports, *this);
  registerTraining(env, exports, *this);
  registerAugment(env, exports, *this);
}

}  // namespace finetorch

using FinetorchAddon = finetorch::Addon;
NODE_API_ADDON(FinetorchAddon)
