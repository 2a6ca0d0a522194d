// Registers the pruning entry points (native/pruning.cc) on the addon's exports. Declared apart
// from addon.h, which nearly every source includes.
#pragma once

#include <napi.h>

namespace finetorch {

class Addon;
void registerPruning(Napi::Env env, Napi::Object exports, Addon& addon);

}  // namespace finetorch
