#include "optimizer.h"

#include <map>
#include <type_traits>

#include "addon.h"
#include "errors.h"
#include "model.h"
#include "tensor.h"

#include <sstream>

namespace finetorch {

namespace optim = torch::optim;

namespace {

double number(const Napi::Object& object, const char* key) { return object.Get(key).As<Napi::Number>().DoubleValue(); }

// libtorch keys optimizer state by a string of the TensorImpl address in 1.x and by the address
// itself in later 2.x releases; this works with either.
template <typename State>
auto stateKey(const State&, const torch::Tensor& p) {
  using Key = typename std::decay_t<State>::key_type;
  if constexpr (std::is_same_v<Key, std::string>) {
    // what 1.x's c10::guts::to_string does (gone in 2.x): the address through an ostream
    std::ostringstream key;
    key << p.unsafeGetTensorImpl();
    return key.str();
  } else {
    return static_cast<Key>(p.unsafeGetTensorImpl());
  }
}

std::unique_ptr<optim::OptimizerOptions> groupOptions(const std::string& type, const Napi::Object& g) {
  if (type == "sgd") {
    auto o = std::make_unique<optim::SGDOptions>(number(g, "lr"));
    o->momentum(number(g, "momentum")).dampening(number(g, "dampening")).weight_decay(number(g, "weightDecay"));
    o->nesterov(g.Get("nesterov").ToBoolean());
    return o;
  }
  auto betas = g.Get("betas").As<Napi::Array>();
  auto b = std::make_tuple(betas.Get(0u).As<Napi::Number>().DoubleValue(), betas.Get(1u).As<Napi::Number>().DoubleValue());
  if (type == "adam") {
    auto o = std::make_unique<optim::AdamOptions>(number(g, "lr"));
    o->betas(b).eps(number(g, "eps")).weight_decay(number(g, "weightDecay")).amsgrad(g.Get("amsgrad").ToBoolean());
    return o;
  }
  auto o = std::make_unique<optim::AdamWOptions>(number(g, "lr"));
  o->betas(b).eps(number(g, "eps")).weight_decay(number(g, "weightDecay")).amsgrad(g.Get("amsgrad").ToBoolean());
  return o;
}

// torch.optim.SGD's _multi_tensor_sgd over libtorch's SGD state: d_p = grad (+ weight_decay * p);
// buf = clone(d_p) on the first step, else buf * momentum + (1 - dampening) * d_p; nesterov:
// d_p + momentum * buf, else buf; p -= lr * d_p. Element by element the same operations as
// SGD::step, so the same numbers.
void foreachSgdStep(optim::SGD& sgd) {
  torch::NoGradGuard noGrad;
  auto& state = sgd.state();
  for (auto& group : sgd.param_groups()) {
    auto& o = static_cast<optim::SGDOptions&>(group.options());
    std::vector<torch::Tensor> params, grads;
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      params.push_back(p);
      grads.push_back(p.grad());
    }
    if (params.empty()) continue;
    if (o.weight_decay() != 0) grads = torch::_foreach_add(grads, params, o.weight_decay());
    if (o.momentum() != 0) {
      std::vector<torch::Tensor> buffers, updated, updatedGrads;
      for (size_t i = 0; i < params.size(); i++) {
        auto key = stateKey(state, params[i]);
        auto found = state.find(key);
        if (found == state.end()) {
          auto s = std::make_unique<optim::SGDParamState>();
          s->momentum_buffer(torch::clone(grads[i]).detach());
          buffers.push_back(s->momentum_buffer());
          state[key] = std::move(s);
        } else {
          auto& buffer = static_cast<optim::SGDParamState&>(*found->second).momentum_buffer();
          buffers.push_back(buffer);
          updated.push_back(buffer);
          updatedGrads.push_back(grads[i]);
        }
      }
      if (!updated.empty()) {
        torch::_foreach_mul_(updated, o.momentum());
        torch::_foreach_add_(updated, updatedGrads, 1 - o.dampening());
      }
      grads = o.nesterov() ? torch::_foreach_add(grads, buffers, o.momentum()) : buffers;
    }
    torch::_foreach_add_(params, grads, -o.lr());
  }
}

}  // namespace

void optimizerStep(optim::Optimizer& optimizer, OptimizerWrap::Foreach foreach) {
  auto* sgd = dynamic_cast<optim::SGD*>(&optimizer);
  bool onGpu = sgd && !sgd->param_groups().empty() && !sgd->param_groups()[0].params().empty() && sgd->param_groups()[0].params()[0].is_cuda();
  if (sgd && (foreach == OptimizerWrap::Foreach::On || (foreach == OptimizerWrap::Foreach::Auto && onGpu))) return foreachSgdStep(*sgd);
  optimizer.step();
}

Napi::Function OptimizerWrap::define(Napi::Env env) {
  return DefineClass(env, "Optimizer",
                     {
                         InstanceMethod<&OptimizerWrap::getLr>("getLr"),
                         InstanceMethod<&OptimizerWrap::setLr>("setLr"),
                         InstanceAccessor<&OptimizerWrap::groupCount>("groupCount"),
                         InstanceMethod<&OptimizerWrap::stateEntries>("stateEntries"),
                         InstanceMethod<&OptimizerWrap::loadStateEntries>("loadStateEntries"),
                         InstanceMethod<&OptimizerWrap::dispose>("dispose"),
                     });
}

OptimizerWrap* OptimizerWrap::unwrap(Napi::Value value, const char* argumentName) {
  Napi::Env env = value.Env();
  if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(Addon::of(env).optimizerConstructor.Value())) {
    throw Napi::TypeError::New(env, std::string("Expected an Optimizer for ") + argumentName);
  }
  auto* wrap = Unwrap(value.As<Napi::Object>());
  if (!wrap->optimizer_) throw Napi::Error::New(env, "Optimizer was used after dispose()");
  return wrap;
}

std::shared_ptr<optim::Optimizer> OptimizerWrap::optimizer() const { return optimizer_; }

// new Optimizer(model, { type, groups: [{ params: names, lr, weightDecay, ... }] }), filled in TS.
OptimizerWrap::OptimizerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<OptimizerWrap>(info) {
  Napi::Env env = info.Env();
  guarded(env, [&] {
    net_ = ModelWrap::unwrap(info[0], "model");
    auto options = info[1].As<Napi::Object>();
    type_ = options.Get("type").As<Napi::String>().Utf8Value();
    auto foreach = options.Get("foreach");  // true, false or 'auto', checked in TS
    foreach_ = foreach.IsString() ? Foreach::Auto : foreach.ToBoolean() ? Foreach::On : Foreach::Off;
    std::map<std::string, torch::Tensor> byName;
    for (auto& p : net_->named_parameters()) byName[p.key()] = p.value();
    auto groups = options.Get("groups").As<Napi::Array>();
    std::vector<optim::OptimizerParamGroup> paramGroups;
    for (uint32_t i = 0; i < groups.Length(); i++) {
      auto group = groups.Get(i).As<Napi::Object>();
      auto names = group.Get("params").As<Napi::Array>();
      std::vector<torch::Tensor> params;
      for (uint32_t j = 0; j < names.Length(); j++) {
        auto found = byName.find(names.Get(j).As<Napi::String>().Utf8Value());
        if (found == byName.end()) throw std::invalid_argument("no parameter named " + names.Get(j).As<Napi::String>().Utf8Value());
        params.push_back(found->second);
        ordered_.push_back(found->second);
      }
      paramGroups.emplace_back(params, groupOptions(type_, group));
    }
    auto first = groups.Get(0u).As<Napi::Object>();
    if (type_ == "sgd") {
      optimizer_ = std::make_shared<optim::SGD>(paramGroups, *static_cast<optim::SGDOptions*>(groupOptions(type_, first).get()));
    } else if (type_ == "adam") {
      optimizer_ = std::make_shared<optim::Adam>(paramGroups, *static_cast<optim::AdamOptions*>(groupOptions(type_, first).get()));
    } else {
      optimizer_ = std::make_shared<optim::AdamW>(paramGroups, *static_cast<optim::AdamWOptions*>(groupOptions(type_, first).get()));
    }
  });
}

torch::optim::Optimizer& OptimizerWrap::live(Napi::Env env) const {
  if (!optimizer_) throw Napi::Error::New(env, "Optimizer was used after dispose()");
  return *optimizer_;
}

torch::optim::OptimizerParamGroup& OptimizerWrap::group(Napi::Env env, Napi::Value value) const {
  auto& groups = live(env).param_groups();
  double index = value.IsNumber() ? value.As<Napi::Number>().DoubleValue() : -1;
  if (!(index >= 0 && index < static_cast<double>(groups.size()) && index == static_cast<double>(static_cast<size_t>(index)))) {
    throw Napi::RangeError::New(env, "Expected a parameter group index below " + std::to_string(groups.size()));
  }
  return groups[static_cast<size_t>(index)];
}

Napi::Value OptimizerWrap::getLr(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), group(info.Env(), info[0]).options().get_lr());
}

Napi::Value OptimizerWrap::setLr(const Napi::CallbackInfo& info) {
  auto& options = group(info.Env(), info[0]).options();
  if (!info[1].IsNumber()) throw Napi::TypeError::New(info.Env(), "Expected a number for lr");
  options.set_lr(info[1].As<Napi::Number>().DoubleValue());
  return info.Env().Undefined();
}

Napi::Value OptimizerWrap::groupCount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(optimizer_ ? optimizer_->param_groups().size() : 0));
}

// Per-parameter state as [{ index, step?, momentum_buffer?, exp_avg?, exp_avg_sq?, max_exp_avg_sq? }],
// index counting parameters group by group as PyTorch's optimizer state_dict does.
Napi::Value OptimizerWrap::stateEntries(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto& state = live(env).state();
  auto result = Napi::Array::New(env);
  uint32_t n = 0;
  for (size_t i = 0; i < ordered_.size(); i++) {
    auto found = state.find(stateKey(state, ordered_[i]));
    if (found == state.end()) continue;
    auto entry = Napi::Object::New(env);
    entry.Set("index", static_cast<double>(i));
    if (auto* sgd = dynamic_cast<optim::SGDParamState*>(found->second.get())) {
      entry.Set("momentum_buffer", TensorWrap::wrap(env, sgd->momentum_buffer().clone()));
    } else if (auto* adam = dynamic_cast<optim::AdamParamState*>(found->second.get())) {
      entry.Set("step", static_cast<double>(adam->step()));
      entry.Set("exp_avg", TensorWrap::wrap(env, adam->exp_avg().clone()));
      entry.Set("exp_avg_sq", TensorWrap::wrap(env, adam->exp_avg_sq().clone()));
      if (adam->max_exp_avg_sq().defined()) entry.Set("max_exp_avg_sq", TensorWrap::wrap(env, adam->max_exp_avg_sq().clone()));
    } else if (auto* adamw = dynamic_cast<optim::AdamWParamState*>(found->second.get())) {
      entry.Set("step", static_cast<double>(adamw->step()));
      entry.Set("exp_avg", TensorWrap::wrap(env, adamw->exp_avg().clone()));
      entry.Set("exp_avg_sq", TensorWrap::wrap(env, adamw->exp_avg_sq().clone()));
      if (adamw->max_exp_avg_sq().defined()) entry.Set("max_exp_avg_sq", TensorWrap::wrap(env, adamw->max_exp_avg_sq().clone()));
    }
    result.Set(n++, entry);
  }
  return result;
}

// The inverse of stateEntries(); shapes are checked against the parameters first.
Napi::Value OptimizerWrap::loadStateEntries(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto entries = info[0].As<Napi::Array>();
    auto tensorField = [&](const Napi::Object& e, const char* key, const torch::Tensor& like) {
      auto t = TensorWrap::unwrap(e.Get(key), key);
      if (!t.sizes().equals(like.sizes())) throw std::invalid_argument(std::string("optimizer state ") + key + " has the wrong shape");
      return t.to(like.device(), like.scalar_type()).clone();
    };
    auto& state = live(env).state();
    state.clear();
    for (uint32_t i = 0; i < entries.Length(); i++) {
      auto e = entries.Get(i).As<Napi::Object>();
      auto index = e.Get("index").As<Napi::Number>().Int64Value();
      if (index < 0 || index >= static_cast<int64_t>(ordered_.size())) throw std::invalid_argument("optimizer state index out of range");
      const auto& p = ordered_[index];
      if (type_ == "sgd") {
        auto s = std::make_unique<optim::SGDParamState>();
        s->momentum_buffer(tensorField(e, "momentum_buffer", p));
        state[stateKey(state, p)] = std::move(s);
      } else {
        auto fill = [&](auto s) {
          s->step(e.Get("step").As<Napi::Number>().Int64Value());
          s->exp_avg(tensorField(e, "exp_avg", p));
          s->exp_avg_sq(tensorField(e, "exp_avg_sq", p));
          if (e.Has("max_exp_avg_sq")) s->max_exp_avg_sq(tensorField(e, "max_exp_avg_sq", p));
          state[stateKey(state, p)] = std::move(s);
        };
        if (type_ == "adam") fill(std::make_unique<optim::AdamParamState>());
        else fill(std::make_unique<optim::AdamWParamState>());
      }
    }
    return env.Undefined();
  });
}

Napi::Value OptimizerWrap::dispose(const Napi::CallbackInfo& info) {
  optimizer_.reset();
  net_.reset();
  ordered_.clear();
  return info.Env().Undefined();
}

void registerOptimizer(Napi::Env env, Napi::Object exports, Addon& addon) {
  auto constructor = OptimizerWrap::define(env);
  addon.optimizerConstructor = Napi::Persistent(constructor);
  exports.Set("Optimizer", constructor);
}

}  // namespace finetorch
