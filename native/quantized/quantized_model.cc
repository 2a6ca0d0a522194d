#include "quantized/quantized_model.h"

#include <stdexcept>

#include "errors.h"
#include "model.h"
#include "models/pruning.h"
#include "quantized/engine.h"
#include "tensor.h"

namespace finetorch {

namespace q = quantized;

namespace {

struct Done {};

Napi::Value undefined(Napi::Env env, Done&) { return env.Undefined(); }

void requireBuilt(const q::QuantizedNet* net) {
  if (!net) throw std::logic_error("QuantizedModel has no network yet: build it from a Model or load a saved state first");
}

template <typename State>
void requireQuantized(const State& state) {
  requireBuilt(state.net.get());
  if (!state.ready) throw std::logic_error("QuantizedModel is not quantized yet: calibrate() on some batches, then finalize()");
}

}  // namespace

Napi::Function QuantizedModelWrap::define(Napi::Env env) {
  return DefineClass(env, "QuantizedModel",
                     {
                         InstanceMethod<&QuantizedModelWrap::build>("build"),
                         InstanceMethod<&QuantizedModelWrap::calibrate>("calibrate"),
                         InstanceMethod<&QuantizedModelWrap::finalize>("finalize"),
                         InstanceMethod<&QuantizedModelWrap::forward>("forward"),
                         InstanceMethod<&QuantizedModelWrap::quantizeInput>("quantizeInput"),
                         InstanceMethod<&QuantizedModelWrap::state>("state"),
                         InstanceMethod<&QuantizedModelWrap::loadState>("loadState"),
                         InstanceAccessor<&QuantizedModelWrap::engine>("engine"),
                         InstanceAccessor<&QuantizedModelWrap::disposed>("disposed"),
                         InstanceMethod<&QuantizedModelWrap::dispose>("dispose"),
                     });
}

// new QuantizedModel({ arch, numClasses, engine, observer }) — validated and filled in TS; engine
// '' picks the best this libtorch has.
QuantizedModelWrap::QuantizedModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<QuantizedModelWrap>(info) {
  Napi::Env env = info.Env();
  guarded(env, [&] {
    auto options = info[0].As<Napi::Object>();
    state_ = std::make_shared<State>();
    state_->options.arch = options.Get("arch").As<Napi::String>().Utf8Value();
    state_->options.observer = options.Get("observer").As<Napi::String>().Utf8Value();
    state_->numClasses = options.Get("numClasses").As<Napi::Number>().Int64Value();
    state_->options.engine = q::selectEngine(options.Get("engine").As<Napi::String>().Utf8Value());
  });
}

std::shared_ptr<QuantizedModelWrap::State> QuantizedModelWrap::live(Napi::Env env) const {
  if (!state_) throw Napi::Error::New(env, "QuantizedModel was used after dispose()");
  return state_;
}

// build(model): folds and copies the float weights; calibration comes next.
Napi::Value QuantizedModelWrap::build(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto state = live(env);
    auto net = ModelWrap::unwrap(info[0], "model");
    return Addon::of(env).queue().run<Done>(
        env,
        [state, net] {
          if (state->net) throw std::logic_error("QuantizedModel was already built");
          q::selectEngine(state->options.engine);
          state->net = q::buildQuantizedNet(*net, state->options);
          return Done{};
        },
        undefined);
  });
}

Napi::Value QuantizedModelWrap::calibrate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto state = live(env);
    auto images = TensorWrap::unwrap(info[0], "images");
    return Addon::of(env).queue().run<Done>(
        env,
        [state, images] {
          requireBuilt(state->net.get());
          if (state->ready) throw std::logic_error("QuantizedModel is already quantized: calibrate() comes before finalize()");
          state->net->calibrate(images.to(torch::kCPU, torch::kFloat));
          state->calibrationImages += images.size(0);
          return Done{};
        },
        undefined);
  });
}

Napi::Value QuantizedModelWrap::finalize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto state = live(env);
    return Addon::of(env).queue().run<Done>(
        env,
        [state] {
          requireBuilt(state->net.get());
          if (state->ready) throw std::logic_error("QuantizedModel is already quantized");
          if (state->calibrationImages == 0) throw std::logic_error("QuantizedModel needs calibrate() on at least one batch before finalize()");
          q::selectEngine(state->options.engine);
          state->net->finalize();
          state->ready = true;
          return Done{};
        },
        undefined);
  });
}

Napi::Value QuantizedModelWrap::forward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto state = live(env);
    auto images = TensorWrap::unwrap(info[0], "images");
    return Addon::of(env).queue().run<torch::Tensor>(
        env,
        [state, images] {
          requireQuantized(*state);
          // the engine is process-wide: another model may have chosen a different one since
          q::selectEngine(state->options.engine);
          return state->net->forward(images.to(torch::kCPU, torch::kFloat));
        },
        [](Napi::Env e, torch::Tensor& out) -> Napi::Value { return TensorWrap::wrap(e, out); });
  });
}

// quantizeInput(images) -> Promise<Tensor>: the uint8 codes of the input quantization, NCHW.
Napi::Value QuantizedModelWrap::quantizeInput(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto state = live(env);
    auto images = TensorWrap::unwrap(info[0], "images");
    return Addon::of(env).queue().run<torch::Tensor>(
        env,
        [state, images] {
          requireQuantized(*state);
          return state->net->quantizeInput(images.to(torch::kCPU, torch::kFloat)).int_repr().contiguous();
        },
        [](Napi::Env e, torch::Tensor& out) -> Napi::Value { return TensorWrap::wrap(e, out); });
  });
}

// state() -> Promise<[name, Tensor][]>: int8 weights with their per-channel scales, float biases,
// activation scales and zero points.
Napi::Value QuantizedModelWrap::state(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto state = live(env);
    return Addon::of(env).queue().run<q::NamedTensors>(
        env,
        [state] {
          requireQuantized(*state);
          return state->net->state();
        },
        [](Napi::Env e, q::NamedTensors& out) -> Napi::Value {
          auto array = Napi::Array::New(e, out.size());
          uint32_t i = 0;
          for (auto& [name, tensor] : out) {
            auto pair = Napi::Array::New(e, 2);
            pair.Set(0u, name);
            pair.Set(1u, TensorWrap::wrap(e, tensor));
            array.Set(i++, pair);
          }
          return array;
        });
  });
}

// loadState(entries): a network of this arch and width, its values from a saved state().
Napi::Value QuantizedModelWrap::loadState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto state = live(env);
    auto entries = info[0].As<Napi::Array>();
    q::NamedTensors incoming;
    for (uint32_t i = 0; i < entries.Length(); i++) {
      auto pair = entries.Get(i).As<Napi::Array>();
      incoming[pair.Get(0u).As<Napi::String>().Utf8Value()] = TensorWrap::unwrap(pair.Get(1u), "state value");
    }
    return Addon::of(env).queue().run<Done>(
        env,
        [state, incoming] {
          if (state->net) throw std::logic_error("QuantizedModel already holds a network: load into a new one");
          q::selectEngine(state->options.engine);
          NetOptions shapes;  // the float layout the state was made from; its values are not used
          shapes.arch = state->options.arch;
          shapes.numClasses = state->numClasses;
          auto floatNet = createNet(shapes);
          // a shrunk ResNet's state has narrower block convs: give the layout the same widths
          std::vector<std::pair<std::string, int64_t>> widths;
          for (const auto& [conv, width] : shrinkableConvs(*floatNet)) {
            auto found = incoming.find(conv + ".weight");
            if (found == incoming.end() || found->second.dim() != 4) continue;  // loadState names what is missing or wrong
            auto saved = found->second.size(0);
            if (saved != width && saved >= 1 && saved < width) widths.emplace_back(conv, saved);
          }
          if (!widths.empty()) shrinkChannels(*floatNet, widths, false);
          auto net = q::buildQuantizedNet(*floatNet, state->options);
          net->loadState(incoming);
          state->net = std::move(net);
          state->ready = true;
          return Done{};
        },
        undefined);
  });
}

Napi::Value QuantizedModelWrap::engine(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), live(info.Env())->options.engine);
}

Napi::Value QuantizedModelWrap::disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !state_); }

// Queued work keeps its own reference and finishes first.
Napi::Value QuantizedModelWrap::dispose(const Napi::CallbackInfo& info) {
  state_.reset();
  return info.Env().Undefined();
}

void registerQuantizedModel(Napi::Env env, Napi::Object exports, Addon&) {
  exports.Set("QuantizedModel", QuantizedModelWrap::define(env));
}

}  // namespace finetorch
