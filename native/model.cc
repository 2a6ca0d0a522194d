#include "model.h"

#include <sstream>

#include "addon.h"
#include "cpu_allocator.h"
#include "device.h"
#include "errors.h"
#include "models/pruning.h"
#include "ops/loss.h"
#include "tensor.h"

namespace finetorch {

namespace {

std::string shapeText(const torch::Tensor& t) {
  std::ostringstream out;
  out << "[";
  for (int64_t i = 0; i < t.dim(); i++) out << (i ? ", " : "") << t.size(i);
  out << "]";
  return out.str();
}

// torch's state_dict order: module by module (pre-order), each module's parameters then buffers.
std::vector<std::pair<std::string, torch::Tensor>> orderedState(torch::nn::Module& net, bool parameters, bool buffers) {
  std::vector<std::pair<std::string, torch::Tensor>> result;
  for (auto& item : net.named_modules("", /*include_self=*/true)) {
    std::string prefix = item.key().empty() ? "" : item.key() + ".";
    if (parameters) {
      for (auto& p : item.value()->named_parameters(false)) result.emplace_back(prefix + p.key(), p.value());
    }
    if (buffers) {
      for (auto& b : item.value()->named_buffers(false)) result.emplace_back(prefix + b.key(), b.value());
    }
  }
  return result;
}

Napi::Array toEntries(Napi::Env env, const std::vector<std::pair<std::string, torch::Tensor>>& items) {
  auto array = Napi::Array::New(env, items.size());
  for (size_t i = 0; i < items.size(); i++) {
    auto pair = Napi::Array::New(env, 2);
    pair.Set(0u, items[i].first);
    pair.Set(1u, TensorWrap::wrap(env, items[i].second));
    array.Set(static_cast<uint32_t>(i), pair);
  }
  return array;
}

struct LoadResult {
  std::vector<std::string> missing, unexpected;
};

}  // namespace

Napi::Function ModelWrap::define(Napi::Env env) {
  return DefineClass(env, "Model",
                     {
                         InstanceMethod<&ModelWrap::forward>("forward"),
                         InstanceMethod<&ModelWrap::features>("features"),
                         InstanceMethod<&ModelWrap::classify>("classify"),
                         InstanceMethod<&ModelWrap::setTraining>("setTraining"),
                         InstanceAccessor<&ModelWrap::training>("training"),
                         InstanceMethod<&ModelWrap::namedModules>("namedModules"),
                         InstanceMethod<&ModelWrap::namedParameters>("namedParameters"),
                         InstanceMethod<&ModelWrap::namedBuffers>("namedBuffers"),
                         InstanceMethod<&ModelWrap::stateDict>("stateDict"),
                         InstanceMethod<&ModelWrap::setRequiresGrad>("setRequiresGrad"),
                         InstanceMethod<&ModelWrap::loadStateDict>("loadStateDict"),
                         InstanceMethod<&ModelWrap::backward>("backward"),
                         InstanceMethod<&ModelWrap::namedGradients>("namedGradients"),
                         InstanceMethod<&ModelWrap::to>("to"),
                         InstanceMethod<&ModelWrap::setChannelsLast>("setChannelsLast"),
                         InstanceMethod<&ModelWrap::setConvAlgorithm>("setConvAlgorithm"),
                         InstanceMethod<&ModelWrap::nonFinite>("nonFinite"),
                         InstanceAccessor<&ModelWrap::device>("device"),
                         InstanceAccessor<&ModelWrap::headPrefix>("headPrefix"),
                         InstanceAccessor<&ModelWrap::featureDim>("featureDim"),
                         InstanceAccessor<&ModelWrap::disposed>("disposed"),
                         InstanceMethod<&ModelWrap::dispose>("dispose"),
                     });
}

std::shared_ptr<Net> ModelWrap::unwrap(Napi::Value value, const char* argumentName) {
  Napi::Env env = value.Env();
  if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(Addon::of(env).modelConstructor.Value())) {
    throw Napi::TypeError::New(env, std::string("Expected a Model for ") + argumentName);
  }
  return Unwrap(value.As<Napi::Object>())->live(env);
}

// new Model({ arch, numClasses, head, dropout, attention }) — options already validated and filled in TS.
ModelWrap::ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {
  Napi::Env env = info.Env();
  guarded(env, [&] {
    auto options = info[0].As<Napi::Object>();
    NetOptions net;
    net.arch = options.Get("arch").As<Napi::String>().Utf8Value();
    net.numClasses = options.Get("numClasses").As<Napi::Number>().Int64Value();
    net.head = options.Get("head").As<Napi::String>().Utf8Value() == "conv1x1" ? HeadKind::Conv1x1 : HeadKind::Linear;
    net.dropout = options.Get("dropout").As<Napi::Number>().DoubleValue();
    const std::string attention = options.Get("attention").As<Napi::String>().Utf8Value();
    net.attention = attention == "se"     ? AttentionKind::SqueezeExcitation
                    : attention == "cbam" ? AttentionKind::Cbam
                                          : AttentionKind::None;
    net_ = createNet(net);
  });
}

std::shared_ptr<Net> ModelWrap::live(Napi::Env env) const {
  if (!net_) throw Napi::Error::New(env, "Model was used after dispose()");
  return net_;
}

Napi::Value ModelWrap::run(const Napi::CallbackInfo& info, torch::Tensor (*step)(Net&, const torch::Tensor&)) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto net = live(env);
    auto input = TensorWrap::unwrap(info[0], "input");
    bool grad = info.Length() > 1 && info[1].ToBoolean();
    return Addon::of(env).queue().run<torch::Tensor>(
        env,
        [net, input, step, grad] {
          // inference by default: no graph is built unless the caller asks for gradients
          torch::AutoGradMode mode(grad);
          applyMasks(*net);
          return step(*net, input);
        },
        [](Napi::Env e, torch::Tensor& out) -> Napi::Value { return TensorWrap::wrap(e, out); });
  });
}

Napi::Value ModelWrap::forward(const Napi::CallbackInfo& info) {
  return run(info, [](Net& net, const torch::Tensor& x) { return net.forward(x); });
}
Napi::Value ModelWrap::features(const Napi::CallbackInfo& info) {
  return run(info, [](Net& net, const torch::Tensor& x) { return net.features(x); });
}
Napi::Value ModelWrap::classify(const Napi::CallbackInfo& info) {
  return run(info, [](Net& net, const torch::Tensor& x) { return net.classify(x); });
}

// setTraining(mode, evalModules): train/eval the whole net, then keep `evalModules` (e.g. the
// BatchNorm layers of a frozen backbone) in eval mode so their running statistics stay fixed.
Napi::Value ModelWrap::setTraining(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto net = live(env);
  net->train(info[0].ToBoolean());
  if (info.Length() > 1 && info[1].IsArray()) {
    auto names = info[1].As<Napi::Array>();
    std::set<std::string> keep;
    for (uint32_t i = 0; i < names.Length(); i++) keep.insert(names.Get(i).As<Napi::String>().Utf8Value());
    for (auto& item : net->named_modules()) {
      if (keep.count(item.key())) item.value()->eval();
    }
  }
  return env.Undefined();
}

Napi::Value ModelWrap::training(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), live(info.Env())->is_training());
}

Napi::Value ModelWrap::namedModules(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto net = live(env);
  auto modules = net->named_modules("", /*include_self=*/false);
  auto array = Napi::Array::New(env, modules.size());
  uint32_t i = 0;
  for (auto& item : modules) {
    auto entry = Napi::Object::New(env);
    entry.Set("name", item.key());
    entry.Set("type", item.value()->name());
    entry.Set("training", item.value()->is_training());
    array.Set(i++, entry);
  }
  return array;
}

Napi::Value ModelWrap::namedParameters(const Napi::CallbackInfo& info) {
  return toEntries(info.Env(), orderedState(*live(info.Env()), true, false));
}
Napi::Value ModelWrap::namedBuffers(const Napi::CallbackInfo& info) {
  return toEntries(info.Env(), orderedState(*live(info.Env()), false, true));
}
Napi::Value ModelWrap::stateDict(const Napi::CallbackInfo& info) {
  return toEntries(info.Env(), orderedState(*live(info.Env()), true, true));
}

// setRequiresGrad(names, flag): freezing is requires_grad=false on the named parameters.
Napi::Value ModelWrap::setRequiresGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto net = live(env);
  auto names = info[0].As<Napi::Array>();
  bool flag = info[1].ToBoolean();
  std::set<std::string> wanted;
  for (uint32_t i = 0; i < names.Length(); i++) wanted.insert(names.Get(i).As<Napi::String>().Utf8Value());
  for (auto& p : net->named_parameters()) {
    if (wanted.count(p.key())) p.value().set_requires_grad(flag);
  }
  return env.Undefined();
}

// loadStateDict(entries: [name, Tensor][], strict) -> Promise<{ missingKeys, unexpectedKeys }>.
// Shapes are checked for every key before any value is copied, so a failed load changes nothing.
Napi::Value ModelWrap::loadStateDict(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto net = live(env);
    auto entries = info[0].As<Napi::Array>();
    bool strict = info[1].ToBoolean();
    std::vector<std::pair<std::string, torch::Tensor>> incoming;
    for (uint32_t i = 0; i < entries.Length(); i++) {
      auto pair = entries.Get(i).As<Napi::Array>();
      incoming.emplace_back(pair.Get(0u).As<Napi::String>().Utf8Value(), TensorWrap::unwrap(pair.Get(1u), "state_dict value"));
    }
    return Addon::of(env).queue().run<LoadResult>(
        env,
        [net, incoming, strict] {
          auto own = orderedState(*net, true, true);
          std::map<std::string, torch::Tensor> target(own.begin(), own.end());
          std::map<std::string, torch::Tensor> source(incoming.begin(), incoming.end());
          LoadResult result;
          for (auto& [name, tensor] : own) {
            if (!source.count(name)) result.missing.push_back(name);
          }
          for (auto& [name, tensor] : incoming) {
            auto found = target.find(name);
            if (found == target.end()) {
              result.unexpected.push_back(name);
              continue;
            }
            if (!found->second.sizes().equals(tensor.sizes())) {
              throw std::runtime_error("size mismatch for " + name + ": copying a param with shape " + shapeText(tensor) +
                                       " from the checkpoint, the shape in the current model is " + shapeText(found->second));
            }
          }
          if (strict && (!result.missing.empty() || !result.unexpected.empty())) {
            std::string message = "Error(s) in loading state_dict:";
            if (!result.missing.empty()) {
              message += " missing keys:";
              for (size_t i = 0; i < result.missing.size(); i++) message += (i ? ", " : " ") + result.missing[i];
              message += ".";
            }
            if (!result.unexpected.empty()) {
              message += " unexpected keys:";
              for (size_t i = 0; i < result.unexpected.size(); i++) message += (i ? ", " : " ") + result.unexpected[i];
              message += ".";
            }
            throw std::runtime_error(message);
          }
          torch::NoGradGuard noGrad;
          for (auto& [name, tensor] : incoming) {
            auto found = target.find(name);
            if (found != target.end()) found->second.copy_(tensor);
          }
          return result;
        },
        [](Napi::Env e, LoadResult& result) -> Napi::Value {
          auto out = Napi::Object::New(e);
          auto list = [&](const std::vector<std::string>& names) {
            auto array = Napi::Array::New(e, names.size());
            for (size_t i = 0; i < names.size(); i++) array.Set(static_cast<uint32_t>(i), names[i]);
            return array;
          };
          out.Set("missingKeys", list(result.missing));
          out.Set("unexpectedKeys", list(result.unexpected));
          return out;
        });
  });
}

// backward(images, labels, { labelSmoothing }) -> Promise<{ loss, correct1, correct5 }>: zeroes the
// gradients, then forward, cross-entropy and backward; the gradients stay for namedGradients().
Napi::Value ModelWrap::backward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto net = live(env);
    auto images = TensorWrap::unwrap(info[0], "images");
    auto labels = TensorWrap::unwrap(info[1], "labels");
    LossOptions loss;
    if (info.Length() > 2 && info[2].IsObject()) {
      auto options = info[2].As<Napi::Object>();
      if (options.Has("labelSmoothing")) loss.labelSmoothing = options.Get("labelSmoothing").As<Napi::Number>().DoubleValue();
    }
    struct Result {
      double loss = 0;
      TopK topk;
    };
    return Addon::of(env).queue().run<Result>(
        env,
        [net, images, labels, loss] {
          net->zero_grad();
          applyMasks(*net);
          auto target = labels.to(images.device());
          auto logits = net->forward(images);
          auto value = crossEntropy(logits, target, loss);
          value.backward();
          return Result{value.item<double>(), countCorrect(logits, target)};
        },
        [](Napi::Env e, Result& r) -> Napi::Value {
          auto out = Napi::Object::New(e);
          out.Set("loss", r.loss);
          out.Set("correct1", static_cast<double>(r.topk.correct1));
          out.Set("correct5", static_cast<double>(r.topk.correct5));
          return out;
        });
  });
}

Napi::Value ModelWrap::namedGradients(const Napi::CallbackInfo& info) {
  std::vector<std::pair<std::string, torch::Tensor>> grads;
  for (auto& [name, param] : orderedState(*live(info.Env()), true, false)) {
    if (param.grad().defined()) grads.emplace_back(name, param.grad());
  }
  return toEntries(info.Env(), grads);
}

Napi::Value ModelWrap::to(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto net = live(env);
    auto device = parseDevice(info[0].As<Napi::String>().Utf8Value());
    return Addon::of(env).queue().run<bool>(
        env, [net, device] { net->to(device); return true; },
        [](Napi::Env e, bool&) -> Napi::Value { return e.Undefined(); });
  });
}

// setChannelsLast(flag) -> Promise<void>: 4-D weights stored NHWC (or back to NCHW), the layout
// oneDNN and cuDNN prefer for convolutions; the optimizer sees the same tensors.
Napi::Value ModelWrap::setChannelsLast(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto net = live(env);
    bool flag = info[0].ToBoolean();
    return Addon::of(env).queue().run<bool>(
        env,
        [net, flag] {
          torch::NoGradGuard noGrad;
          auto format = flag ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
          for (auto& p : net->parameters()) {
            if (p.dim() == 4) p.set_data(p.data().contiguous(format));
          }
          return true;
        },
        [](Napi::Env e, bool&) -> Napi::Value { return e.Undefined(); });
  });
}

// setConvAlgorithm(name) -> Promise<void>: 'winograd' computes the 3x3 convolutions of training
// steps with oneDNN's Winograd (ops/winograd_conv.h), 'direct' with ATen's kernels. Set on the
// compute thread, which reads it at every forward. TS has checked winogradSupport() already;
// where it is missing anyway, convolve() computes directly.
Napi::Value ModelWrap::setConvAlgorithm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto net = live(env);
    bool winograd = info[0].As<Napi::String>().Utf8Value() == "winograd";
    return Addon::of(env).queue().run<bool>(
        env, [net, winograd] { return net->convolutionChoice->winograd = winograd; },
        [](Napi::Env e, bool&) -> Napi::Value { return e.Undefined(); });
  });
}

// nonFinite(trainableOnly) -> Promise<string[]>: parameters and buffers holding NaN or Inf (checked
// before a checkpoint is written, so a diverged model never replaces a good one). trainableOnly:
// only what training can change — parameters that require grad and the buffers of modules in
// training mode (BatchNorm statistics) — e.g. the head alone when the backbone is frozen.
Napi::Value ModelWrap::nonFinite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto net = live(env);
    bool trainableOnly = info[0].ToBoolean();
    return Addon::of(env).queue().run<std::vector<std::string>>(
        env,
        [net, trainableOnly] {
          torch::NoGradGuard noGrad;
          std::vector<std::string> bad;
          auto check = [&bad](const std::string& name, const torch::Tensor& t) {
            if (t.is_floating_point() && !torch::isfinite(t).all().item<bool>()) bad.push_back(name);
          };
          if (!trainableOnly) {
            for (auto& [name, t] : orderedState(*net, true, true)) check(name, t);
            return bad;
          }
          for (auto& item : net->named_parameters()) {
            if (item.value().requires_grad()) check(item.key(), item.value());
          }
          for (auto& module : net->named_modules("", false)) {
            if (!module.value()->is_training()) continue;
            for (auto& buffer : module.value()->named_buffers(false)) check(module.key() + "." + buffer.key(), buffer.value());
          }
          return bad;
        },
        [](Napi::Env e, std::vector<std::string>& bad) -> Napi::Value {
          auto array = Napi::Array::New(e, bad.size());
          for (size_t i = 0; i < bad.size(); i++) array.Set(static_cast<uint32_t>(i), bad[i]);
          return array;
        });
  });
}

Napi::Value ModelWrap::device(const Napi::CallbackInfo& info) {
  auto net = live(info.Env());
  auto params = net->parameters();
  return Napi::String::New(info.Env(), params.empty() ? "cpu" : deviceName(params.front().device()));
}

Napi::Value ModelWrap::headPrefix(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), live(info.Env())->headPrefix());
}
Napi::Value ModelWrap::featureDim(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(live(info.Env())->featureDim()));
}
Napi::Value ModelWrap::disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !net_); }

// Work already queued keeps its own reference; the memory goes when the last one finishes. The
// CPU block cache is emptied too: a disposed model is the moment its activations stop recurring.
Napi::Value ModelWrap::dispose(const Napi::CallbackInfo& info) {
  net_.reset();
  cpu_cache::release();
  return info.Env().Undefined();
}

void registerModel(Napi::Env env, Napi::Object exports, Addon& addon) {
  auto constructor = ModelWrap::define(env);
  addon.modelConstructor = Napi::Persistent(constructor);
  exports.Set("Model", constructor);
}

}  // namespace finetorch
