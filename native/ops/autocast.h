// Automatic mixed precision for one step: an RAII guard over libtorch's autocast state, written
// for both API generations (1.x: set_enabled / set_cpu_enabled; 2.4+: per-device functions).
#pragma once

#include <stdexcept>
#include <string>

#include <ATen/autocast_mode.h>
#include <torch/version.h>

namespace finetorch {

enum class Amp { None, Float16, BFloat16 };

inline Amp parseAmp(const std::string& name) {
  if (name == "fp16") return Amp::Float16;
  if (name == "bf16") return Amp::BFloat16;
  return Amp::None;
}

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define FINETORCH_AUTOCAST_PER_DEVICE 1
#endif

// Whether an autocast region is open on the CPU (kernels that bypass ATen must not then run fp32).
inline bool cpuAutocastEnabled() {
#ifdef FINETORCH_AUTOCAST_PER_DEVICE
  return at::autocast::is_autocast_enabled(at::kCPU);
#else
  return at::autocast::is_cpu_enabled();
#endif
}

class AutocastGuard {
 public:
  AutocastGuard(Amp amp, const c10::Device& device) : amp_(amp), cuda_(device.is_cuda()) {
    if (amp_ == Amp::None) return;
    if (!cuda_ && amp_ == Amp::Float16) {
      throw std::invalid_argument("amp 'fp16' needs a CUDA device; on the CPU use amp 'bf16'");
    }
    auto dtype = amp_ == Amp::Float16 ? at::kHalf : at::kBFloat16;
#ifdef FINETORCH_AUTOCAST_PER_DEVICE
    auto type = cuda_ ? at::kCUDA : at::kCPU;
    wasEnabled_ = at::autocast::is_autocast_enabled(type);
    previousDtype_ = at::autocast::get_autocast_dtype(type);
    at::autocast::set_autocast_dtype(type, dtype);
    at::autocast::set_autocast_enabled(type, true);
#else
    if (cuda_) {
      wasEnabled_ = at::autocast::is_enabled();
      previousDtype_ = at::autocast::get_autocast_gpu_dtype();
      at::autocast::set_autocast_gpu_dtype(dtype);
      at::autocast::set_enabled(true);
    } else {
      wasEnabled_ = at::autocast::is_cpu_enabled();
      previousDtype_ = at::autocast::get_autocast_cpu_dtype();
      at::autocast::set_autocast_cpu_dtype(dtype);
      at::autocast::set_cpu_enabled(true);
    }
#endif
    at::autocast::increment_nesting();
  }

  ~AutocastGuard() {
    if (amp_ == Amp::None) return;
    // leaving the outermost region frees the casts cached for this step
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
#ifdef FINETORCH_AUTOCAST_PER_DEVICE
    auto type = cuda_ ? at::kCUDA : at::kCPU;
    at::autocast::set_autocast_enabled(type, wasEnabled_);
    at::autocast::set_autocast_dtype(type, previousDtype_);
#else
    if (cuda_) {
      at::autocast::set_enabled(wasEnabled_);
      at::autocast::set_autocast_gpu_dtype(previousDtype_);
    } else {
      at::autocast::set_cpu_enabled(wasEnabled_);
      at::autocast::set_autocast_cpu_dtype(previousDtype_);
    }
#endif
  }

  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  Amp amp_;
  bool cuda_;
  bool wasEnabled_ = false;
  at::ScalarType previousDtype_ = at::kFloat;
};

}  // namespace finetorch
