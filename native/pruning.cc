// The JS entry points of models/pruning.h: prune, makePermanent, shrinkChannels, shrinkableConvs.
// Options arrive validated and filled in TS (lib/models/pruning.ts).
#include "models/pruning.h"

#include <stdexcept>
#include <string>

#include "addon.h"
#include "errors.h"
#include "model.h"

namespace finetorch {

namespace {

std::vector<std::string> strings(const Napi::Value& value) {
  auto array = value.As<Napi::Array>();
  std::vector<std::string> result;
  for (uint32_t i = 0; i < array.Length(); i++) result.push_back(array.Get(i).As<Napi::String>().Utf8Value());
  return result;
}

Napi::Value done(Napi::Env env, bool&) { return env.Undefined(); }

// prune(model, { method, modules, amount, isCount }) -> Promise<void>
Napi::Value pruneModel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto net = ModelWrap::unwrap(info[0], "model");
    auto o = info[1].As<Napi::Object>();
    PruneOptions options;
    auto method = o.Get("method").As<Napi::String>().Utf8Value();
    using Method = PruneOptions::Method;
    if (method == "l1_unstructured") options.method = Method::L1Unstructured;
    else if (method == "global_l1") options.method = Method::GlobalL1Unstructured;
    else if (method == "l2_structured") options.method = Method::L2Structured;
    else if (method == "identity") options.method = Method::Identity;
    else throw std::invalid_argument("prune: expected method l1_unstructured, global_l1, l2_structured or identity but received '" + method + "'");
    options.modules = strings(o.Get("modules"));
    options.amount = o.Get("amount").As<Napi::Number>().DoubleValue();
    options.isCount = o.Get("isCount").ToBoolean();
    return Addon::of(env).queue().run<bool>(env, [net, options] { prune(*net, options); return true; }, done);
  });
}

// makePermanent(model, modules) -> Promise<void>
Napi::Value makePermanentModel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto net = ModelWrap::unwrap(info[0], "model");
    auto modules = strings(info[1]);
    return Addon::of(env).queue().run<bool>(env, [net, modules] { makePermanent(*net, modules); return true; }, done);
  });
}

// shrinkChannels(model, [[conv, width], ...], byNorm) -> Promise<void>
Napi::Value shrinkModel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto net = ModelWrap::unwrap(info[0], "model");
    auto entries = info[1].As<Napi::Array>();
    std::vector<std::pair<std::string, int64_t>> widths;
    for (uint32_t i = 0; i < entries.Length(); i++) {
      auto pair = entries.Get(i).As<Napi::Array>();
      widths.emplace_back(pair.Get(0u).As<Napi::String>().Utf8Value(), pair.Get(1u).As<Napi::Number>().Int64Value());
    }
    bool byNorm = info[2].ToBoolean();
    return Addon::of(env).queue().run<bool>(env, [net, widths, byNorm] { shrinkChannels(*net, widths, byNorm); return true; }, done);
  });
}

// shrinkableConvs(model) -> [conv, width][] (synchronous: names and sizes only)
Napi::Value shrinkable(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto convs = shrinkableConvs(*ModelWrap::unwrap(info[0], "model"));
    auto array = Napi::Array::New(env, convs.size());
    for (size_t i = 0; i < convs.size(); i++) {
      auto pair = Napi::Array::New(env, 2);
      pair.Set(0u, convs[i].first);
      pair.Set(1u, static_cast<double>(convs[i].second));
      array.Set(static_cast<uint32_t>(i), pair);
    }
    return array;
  });
}

}  // namespace

void registerPruning(Napi::Env env, Napi::Object exports, Addon&) {
  exports.Set("prune", Napi::Function::New<pruneModel>(env, "prune"));
  exports.Set("makePermanent", Napi::Function::New<makePermanentModel>(env, "makePermanent"));
  exports.Set("shrinkChannels", Napi::Function::New<shrinkModel>(env, "shrinkChannels"));
  exports.Set("shrinkableConvs", Napi::Function::New<shrinkable>(env, "shrinkableConvs"));
}

}  // namespace finetorch
