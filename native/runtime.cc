// Facts about the libtorch in use, thread count, seeding, and a few plain ops the tests and
// benchmarks lean on.
#include <ATen/Parallel.h>
#include <torch/version.h>

#include "addon.h"
#include "cpu_allocator.h"
#include "device.h"
#include "errors.h"
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

Napi::Value matmul(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto a = TensorWrap::unwrap(info[0], "a");
    auto b = TensorWrap::unwrap(info[1], "b");
    return Addon::of(env).queue().run<torch::Tensor>(
        env, [a, b] { return torch::matmul(a, b); },
        [](Napi::Env e, torch::Tensor& result) -> Napi::Value { return TensorWrap::wrap(e, result); });
  });
}

// randn(shape, seed?) on the compute thread, for tests and benchmarks.
Napi::Value randn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto shapeArray = info[0].As<Napi::Array>();
    std::vector<int64_t> sizes(shapeArray.Length());
    for (uint32_t i = 0; i < shapeArray.Length(); i++) sizes[i] = shapeArray.Get(i).As<Napi::Number>().Int64Value();
    return TensorWrap::wrap(env, torch::randn(sizes));
  });
}

// cat(tensors, dim) -> Promise<Tensor>
Napi::Value cat(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto list = info[0].As<Napi::Array>();
    std::vector<torch::Tensor> parts;
    for (uint32_t i = 0; i < list.Length(); i++) parts.push_back(TensorWrap::unwrap(list.Get(i), "tensors[i]"));
    int64_t dim = info[1].As<Napi::Number>().Int64Value();
    return Addon::of(env).queue().run<torch::Tensor>(
        env, [parts, dim] { return torch::cat(parts, dim); },
        [](Napi::Env e, torch::Tensor& result) -> Napi::Value { return TensorWrap::wrap(e, result); });
  });
}

// indexSelect(tensor, indices: Int32Array, dim) -> Promise<Tensor>: rows picked (and ordered) by index.
Napi::Value indexSelect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto source = TensorWrap::unwrap(info[0], "tensor");
    auto indices = info[1].As<Napi::Int32Array>();
    auto index = torch::from_blob(indices.Data(), {static_cast<int64_t>(indices.ElementLength())}, torch::kInt).to(torch::kLong);
    int64_t dim = info[2].As<Napi::Number>().Int64Value();
    return Addon::of(env).queue().run<torch::Tensor>(
        env, [source, index, dim] { return source.index_select(dim, index.to(source.device())); },
        [](Napi::Env e, torch::Tensor& result) -> Napi::Value { return TensorWrap::wrap(e, result); });
  });
}

}  // namespace

void registerRuntime(Napi::Env env, Napi::Object exports, Addon&) {
  exports.Set("info", Napi::Function::New<info>(env, "info"));
  exports.Set("getNumThreads", Napi::Function::New<getNumThreads>(env, "getNumThreads"));
  exports.Set("setNumThreads", Napi::Function::New<setNumThreads>(env, "setNumThreads"));
  exports.Set("manualSeed", Napi::Function::New<manualSeed>(env, "manualSeed"));
  exports.Set("setCudnnBenchmark", Napi::Function::New<setCudnnBenchmark>(env, "setCudnnBenchmark"));
  exports.Set("setAllowTF32", Napi::Function::New<setAllowTF32>(env, "setAllowTF32"));
  exports.Set("allowTF32", Napi::Function::New<allowTF32>(env, "allowTF32"));
  exports.Set("cpuCacheInfo", Napi::Function::New<cpuCacheInfo>(env, "cpuCacheInfo"));
  exports.Set("emptyCpuCache", Napi::Function::New<emptyCpuCache>(env, "emptyCpuCache"));
  exports.Set("matmul", Napi::Function::New<matmul>(env, "matmul"));
  exports.Set("randn", Napi::Function::New<randn>(env, "randn"));
  exports.Set("cat", Napi::Function::New<cat>(env, "cat"));
  exports.Set("indexSelect", Napi::Function::New<indexSelect>(env, "indexSelect"));
}

}  // namespace finetorch
