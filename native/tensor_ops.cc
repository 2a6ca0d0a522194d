// Plain tensor operations exported beside the Tensor class (matmul, randn, cat, indexSelect),
// run on the compute thread; the tests and benchmarks lean on them.
#include <optional>
#include <vector>

#include "addon.h"
#include "errors.h"
#include "ops/mix_batch.h"
#include "tensor.h"

namespace finetorch {

namespace {

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

// mixBatch(images, labels, { numClasses, lam, box: [x1, y1, x2, y2] | null }) -> Promise<Tensor>: MixUp
// (no box) or CutMix of the images in place; resolves to the soft targets. TS validated the box.
Napi::Value mixBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto images = TensorWrap::unwrap(info[0], "images");
    auto labels = TensorWrap::unwrap(info[1], "labels");
    auto options = info[2].As<Napi::Object>();
    int64_t numClasses = options.Get("numClasses").As<Napi::Number>().Int64Value();
    double lam = options.Get("lam").As<Napi::Number>().DoubleValue();
    std::optional<MixBox> box;
    auto boxValue = options.Get("box");
    if (!boxValue.IsNull() && !boxValue.IsUndefined()) {
      auto b = boxValue.As<Napi::Array>();
      box = MixBox{b.Get(0u).As<Napi::Number>().Int64Value(), b.Get(1u).As<Napi::Number>().Int64Value(), b.Get(2u).As<Napi::Number>().Int64Value(),
                   b.Get(3u).As<Napi::Number>().Int64Value()};
      if (images.dim() != 4 || box->x1 < 0 || box->y1 < 0 || box->x2 > images.size(3) || box->y2 > images.size(2)) {
        throw std::invalid_argument("mixBatch: box lies outside the images");
      }
    }
    return Addon::of(env).queue().run<torch::Tensor>(
        env, [images, labels, numClasses, lam, box] { return finetorch::mixBatch(images, labels, numClasses, lam, box ? &*box : nullptr); },
        [](Napi::Env e, torch::Tensor& result) -> Napi::Value { return TensorWrap::wrap(e, result); });
  });
}

}  // namespace

void registerTensorOps(Napi::Env env, Napi::Object exports, Addon&) {
  exports.Set("matmul", Napi::Function::New<matmul>(env, "matmul"));
  exports.Set("randn", Napi::Function::New<randn>(env, "randn"));
  exports.Set("cat", Napi::Function::New<cat>(env, "cat"));
  exports.Set("indexSelect", Napi::Function::New<indexSelect>(env, "indexSelect"));
  exports.Set("mixBatch", Napi::Function::New<mixBatch>(env, "mixBatch"));
}

}  // namespace finetorch
