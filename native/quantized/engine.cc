#include "quantized/engine.h"

#include <algorithm>
#include <stdexcept>
#include <vector>

#include <ATen/Context.h>

namespace finetorch::quantized {

namespace {

struct EngineName {
  at::QEngine engine;
  const char* name;
};

// Preference order: x86 (fbgemm + onednn by shape) where built, then fbgemm, onednn, qnnpack.
const EngineName kEngines[] = {
    {at::kX86, "x86"}, {at::kFBGEMM, "fbgemm"}, {at::kONEDNN, "onednn"}, {at::kQNNPACK, "qnnpack"}};

bool supported(at::QEngine engine) {
  const auto& list = at::globalContext().supportedQEngines();
  return std::find(list.begin(), list.end(), engine) != list.end();
}

}  // namespace

std::string selectEngine(const std::string& preferred) {
  std::vector<std::string> available;
  for (const auto& e : kEngines) {
    if (!supported(e.engine)) continue;
    available.push_back(e.name);
    if (preferred.empty() || preferred == e.name) {
      at::globalContext().setQEngine(e.engine);
      return e.name;
    }
  }
  std::string list;
  for (const auto& name : available) list += (list.empty() ? "" : ", ") + name;
  if (available.empty()) throw std::runtime_error("this libtorch has no quantized engine (int8 kernels)");
  throw std::runtime_error("quantized engine '" + preferred + "' is not in this libtorch (it has " + list + ")");
}

bool engineReducesRange(const std::string& engine) { return engine == "x86" || engine == "fbgemm"; }

}  // namespace finetorch::quantized
