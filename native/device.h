// Device names from JS ("cpu", "cuda", "cuda:1") with errors that say why a device is unusable.
#pragma once

#include <string>

#include <torch/types.h>
#include <torch/cuda.h>

namespace finetorch {

inline torch::Device parseDevice(const std::string& name) {
  torch::Device device(name);  // rejects malformed names with libtorch's own message
  if (device.is_cuda()) {
    if (!torch::cuda::is_available()) {
      throw std::runtime_error("device '" + name +
                               "' requested but CUDA is not available: this finetorch build uses a "
                               "CPU-only libtorch or no GPU is visible (set LIBTORCH to a CUDA "
                               "libtorch and rebuild, or use device 'cpu')");
    }
    auto count = static_cast<int64_t>(torch::cuda::device_count());
    if (device.has_index() && device.index() >= count) {
      throw std::runtime_error("device '" + name + "' requested but only " + std::to_string(count) +
                               " CUDA device(s) are visible");
    }
  }
  return device;
}

inline std::string deviceName(const torch::Device& device) { return device.str(); }

}  // namespace finetorch
