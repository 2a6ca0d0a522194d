// Facts about the libtorch in use and the settings that apply to the whole process: threads,
// cuDNN and TF32, the CPU block cache, seeding and the CPU generator's state.
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <torch/version.h>

#include "addon.h"
#include "cpu_allocator.h"
#include "device.h"
#include "errors.h"
#include "ops/winograd_conv.h"
#include "tensor.h"

namespace finetorch {

namespace {

Napi::Value info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto result = Napi::Object::New(env);
  result.Set("torchVersion", TORCH_VERSION);
  result.Set("cudaAvailable", torch::cuda::is_available());
  result.Set("cudaDeviceCount", static_cast<double>(torch::cuda::device_count()));
  result.Set("cudnnAvailable", torch::cuda::cudnn_is_available());
  result.Set("mkldnnAvailable", at::hasMKLDNN());
  result.Set("parallelInfo", at::get_parallel_info());
  auto winograd = winogradSupport();
  auto winogradInfo = Napi::Object::New(env);
  winogradInfo.Set("available", winograd.available);
  winogradInfo.Set("reason", winograd.reason);
  result.Set("winograd", winogradInfo);
  return result;
}

Napi::Value getNumThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), Addon::of(info.Env()).queue().threads());
}

Napi::Value setNumThreads(const Napi::CallbackInfo& info) {
  Addon::of(info.Env()).queue().setThreads(info[0].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

Napi::Value setCudnnBenchmark(const Napi::CallbackInfo& info) {
  // cuDNN tries the convolution algorithms once per input shape and keeps the fastest
  at::globalContext().setBenchmarkCuDNN(info[0].ToBoolean());
  return info.Env().Undefined();
}

// TensorFloat-32 on Ampere and later GPUs: cuDNN convolutions (PyTorch's default: on) and cuBLAS
// matmuls (default: off). Exact float32 is for parity checks; TF32 is the faster default.
Napi::Value setAllowTF32(const Napi::CallbackInfo& info) {
  auto flags = info[0].As<Napi::Object>();
  if (flags.Has("conv")) at::globalContext().setAllowTF32CuDNN(flags.Get("conv").ToBoolean());
  if (flags.Has("matmul")) at::globalContext().setAllowTF32CuBLAS(flags.Get("matmul").ToBoolean());
  return info.Env().Undefined();
}

Napi::Value allowTF32(const Napi::CallbackInfo& info) {
  auto result = Napi::Object::New(info.Env());
  result.Set("conv", at::globalContext().allowTF32CuDNN());
  result.Set("matmul", at::globalContext().allowTF32CuBLAS());
  return result;
}

// cpuCacheInfo() -> { cachedBytes, limitBytes, hits, installed }
Napi::Value cpuCacheInfo(const Napi::CallbackInfo& info) {
  auto stats = cpu_cache::stats();
  auto result = Napi::Object::New(info.Env());
  result.Set("cachedBytes", static_cast<double>(stats.cachedBytes));
  result.Set("limitBytes", static_cast<double>(stats.limitBytes));
  result.Set("hits", static_cast<double>(stats.hits));
  result.Set("installed", stats.installed);
  return result;
}

Napi::Value emptyCpuCache(const Napi::CallbackInfo& info) {
  cpu_cache::release();
  return info.Env().Undefined();
}

Napi::Value manualSeed(const Napi::CallbackInfo& info) {
  // Seeds the CPU generator and every CUDA one, like torch.manual_seed.
  torch::manual_seed(static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value()));
  return info.Env().Undefined();
}

// The libtorch CPU generator's state (dropout, random init), as a uint8 tensor: what checkpoints carry.
Napi::Value getRngState(const Napi::CallbackInfo& info) {
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  return TensorWrap::wrap(info.Env(), generator.get_state());
}

Napi::Value setRngState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto state = TensorWrap::unwrap(info[0], "state");
    auto generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_state(state);
    return env.Undefined();
  });
}

}  // namespace

void registerRuntime(Napi::Env env, Napi::Object exports, Addon&) {
  exports.Set("info", Napi::Function::New<info>(env, "info"));
  exports.Set("getNumThreads", Napi::Function::New<getNumThreads>(env, "getNumThreads"));
  exports.Set("setNumThreads", Napi::Function::New<setNumThreads>(env, "setNumThreads"));
  exports.Set("manualSeed", Napi::Function::New<manualSeed>(env, "manualSeed"));
  exports.Set("getRngState", Napi::Function::New<getRngState>(env, "getRngState"));
  exports.Set("setRngState", Napi::Function::New<setRngState>(env, "setRngState"));
  exports.Set("setCudnnBenchmark", Napi::Function::New<setCudnnBenchmark>(env, "setCudnnBenchmark"));
  exports.Set("setAllowTF32", Napi::Function::New<setAllowTF32>(env, "setAllowTF32"));
  exports.Set("allowTF32", Napi::Function::New<allowTF32>(env, "allowTF32"));
  exports.Set("cpuCacheInfo", Napi::Function::New<cpuCacheInfo>(env, "cpuCacheInfo"));
  exports.Set("emptyCpuCache", Napi::Function::New<emptyCpuCache>(env, "emptyCpuCache"));
}

}  // namespace finetorch
