// One native call per batch: trainStep (forward, loss, backward, clipping, optimizer step) and
// evalStep (no graph).
#include <cmath>

#include "addon.h"
#include "distributed/gradient_sync.h"
#include "errors.h"
#include "model.h"
#include "models/pruning.h"
#include "ops/autocast.h"
#include "ops/loss.h"
#include "optimizer.h"
#include "tensor.h"

namespace finetorch {

namespace {

struct GradStat {
  std::string name;
  double norm = 0;
  double min = 0, max = 0;
  std::vector<float> histogram;
};

struct StepResult {
  double loss = 0;
  TopK topk;
  int64_t count = 0;
  double gradNorm = -1;  // -1: not computed
  bool skipped = false;  // fp16 loss scaling found inf/nan gradients: no update this step
  std::vector<GradStat> gradStats;
  torch::Tensor logits;
};

LossOptions lossOptions(const Napi::Object& options) {
  LossOptions loss;
  loss.labelSmoothing = options.Get("labelSmoothing").As<Napi::Number>().DoubleValue();
  auto weights = options.Get("classWeights");
  if (!weights.IsNull() && !weights.IsUndefined()) loss.classWeights = TensorWrap::unwrap(weights, "classWeights");
  return loss;
}

Napi::Object resultToJs(Napi::Env env, StepResult& r) {
  auto out = Napi::Object::New(env);
  out.Set("loss", r.loss);
  out.Set("correct1", static_cast<double>(r.topk.correct1));
  out.Set("correct5", static_cast<double>(r.topk.correct5));
  out.Set("count", static_cast<double>(r.count));
  if (r.gradNorm >= 0) out.Set("gradNorm", r.gradNorm);
  out.Set("skipped", r.skipped);
  if (!r.gradStats.empty()) {
    auto stats = Napi::Array::New(env, r.gradStats.size());
    for (size_t i = 0; i < r.gradStats.size(); i++) {
      auto s = Napi::Object::New(env);
      s.Set("name", r.gradStats[i].name);
      s.Set("norm", r.gradStats[i].norm);
      s.Set("min", r.gradStats[i].min);
      s.Set("max", r.gradStats[i].max);
      auto counts = Napi::Float32Array::New(env, r.gradStats[i].histogram.size());
      std::copy(r.gradStats[i].histogram.begin(), r.gradStats[i].histogram.end(), counts.Data());
      s.Set("histogram", counts);
      stats.Set(static_cast<uint32_t>(i), s);
    }
    out.Set("gradStats", stats);
  }
  if (r.logits.defined()) out.Set("logits", TensorWrap::wrap(env, r.logits));
  return out;
}

// Scalars computed on the device, read to the host in one copy (one wait on a GPU).
std::vector<double> readScalars(const std::vector<torch::Tensor>& scalars) {
  std::vector<torch::Tensor> asDouble;
  for (const auto& t : scalars) asDouble.push_back(t.detach().to(torch::kDouble).reshape({}));
  auto host = torch::stack(asDouble).to(torch::kCPU);
  return {host.data_ptr<double>(), host.data_ptr<double>() + host.numel()};
}

// trainStep(model, optimizer, images, labels, { labelSmoothing, classWeights, clipGradNorm, gradStatsBins })
Napi::Value trainStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto net = ModelWrap::unwrap(info[0], "model");
    auto* optimizerWrap = OptimizerWrap::unwrap(info[1], "optimizer");
    auto optimizer = optimizerWrap->optimizer();
    auto foreach = optimizerWrap->foreach();
    auto images = TensorWrap::unwrap(info[2], "images");
    auto labels = TensorWrap::unwrap(info[3], "labels");
    auto options = info[4].As<Napi::Object>();
    auto loss = lossOptions(options);
    double clip = options.Get("clipGradNorm").As<Napi::Number>().DoubleValue();
    int64_t bins = options.Get("gradStatsBins").As<Napi::Number>().Int64Value();
    bool featuresInput = options.Get("features").ToBoolean();
    Amp amp = parseAmp(options.Get("amp").As<Napi::String>().Utf8Value());
    double lossScale = options.Get("lossScale").As<Napi::Number>().DoubleValue();
    auto sync = unwrapGradientSync(options.Get("gradientSync"));
    return Addon::of(env).queue().run<StepResult>(
        env,
        [net, optimizer, foreach, images, labels, loss, clip, bins, featuresInput, amp, lossScale, sync] {
          // gradients set to none, not zero: frozen parameters then get no update at all (weight
          // decay and momentum included), as with PyTorch's zero_grad(set_to_none=True)
          for (auto& p : net->parameters()) p.mutable_grad() = torch::Tensor();
          // int64 class indices [N], or probabilities [N, C] (cross_entropy's soft-target path)
          auto target = labels.to(images.device());
          torch::Tensor logits, value;
          applyMasks(*net);
          if (sync) sync->beforeForward();
          {
            AutocastGuard autocast(amp, images.device());
            logits = featuresInput ? net->classify(images) : net->forward(images);
            value = crossEntropy(logits, target, loss);  // computed in float32
          }
          if (sync) sync->beforeBackward();
          // No host sync between forward and backward: the GPU keeps its queue. The loss, the hit
          // counts and (fp16) the inf/NaN flag come back in one read after backward, before any
          // parameter changes, as PyTorch's GradScaler.step reads found_inf.
          (lossScale > 0 ? value * lossScale : value).backward();
          // averaged over the ranks from here on (the Reducer did it during backward)
          if (sync) sync->afterBackward();
          std::vector<torch::Tensor> withGrad;
          for (auto& p : net->parameters()) {
            if (p.grad().defined()) withGrad.push_back(p);
          }
          // soft targets (MixUp/CutMix): a hit is the dominant label, the one with the larger weight
          auto [hits1, hits5] = correctCounts(logits, target.dim() == 2 ? target.argmax(1) : target);
          torch::Tensor foundInf;
          if (lossScale > 0) {
            torch::NoGradGuard noGrad;
            auto floatOnDevice = torch::TensorOptions().dtype(torch::kFloat).device(images.device());
            if (images.is_cuda()) {
              // one fused kernel for every gradient: unscale and flag inf/NaN
              std::vector<torch::Tensor> grads;
              for (auto& p : withGrad) grads.push_back(p.mutable_grad());
              foundInf = torch::zeros({}, floatOnDevice);
              at::_amp_foreach_non_finite_check_and_unscale_(grads, foundInf, torch::full({}, 1.0 / lossScale, floatOnDevice));
            } else {
              bool finite = true;
              for (auto& p : withGrad) {
                p.mutable_grad().div_(lossScale);
                if (finite && !torch::isfinite(p.grad()).all().item<bool>()) finite = false;
              }
              foundInf = torch::full({}, finite ? 0.0 : 1.0, floatOnDevice);
            }
          }
          auto read = readScalars({value, hits1, hits5, foundInf.defined() ? foundInf : torch::zeros({}, value.options())});
          double lossValue = read[0];
          StepResult result;
          result.loss = lossValue;
          result.count = images.size(0);
          result.topk.correct1 = static_cast<int64_t>(read[1]);
          result.topk.correct5 = static_cast<int64_t>(read[2]);
          if (!std::isfinite(lossValue)) {
            for (auto& p : withGrad) p.mutable_grad() = torch::Tensor();
            throw std::runtime_error(std::string("loss is ") + (std::isnan(lossValue) ? "NaN" : lossValue > 0 ? "+Inf" : "-Inf") +
                                     ": the step was not applied (parameters unchanged); lower the learning rate or check the inputs");
          }
          if (read[3] != 0) {
            // fp16 overflow: skip this step; the caller's scaler backs off
            for (auto& p : withGrad) p.mutable_grad() = torch::Tensor();
            result.skipped = true;
            return result;
          }
          if (clip > 0) {
            result.gradNorm = torch::nn::utils::clip_grad_norm_(withGrad, clip);
            if (!std::isfinite(result.gradNorm)) {
              throw std::runtime_error("gradient norm is not finite: the step was not applied (parameters unchanged)");
            }
          }
          if (bins > 0) {
            torch::NoGradGuard noGrad;
            for (auto& item : net->named_parameters()) {
              const auto& grad = item.value().grad();
              if (!grad.defined()) continue;
              GradStat stat;
              stat.name = item.key();
              auto flat = grad.detach().to(torch::kFloat).flatten();
              stat.norm = flat.norm().item<double>();
              stat.min = flat.min().item<double>();
              stat.max = flat.max().item<double>();
              auto histogram = torch::histc(flat, bins, stat.min, stat.max).to(torch::kCPU).contiguous();
              stat.histogram.assign(histogram.data_ptr<float>(), histogram.data_ptr<float>() + bins);
              result.gradStats.push_back(std::move(stat));
            }
          }
          optimizerStep(*optimizer, foreach);
          return result;
        },
        [](Napi::Env e, StepResult& r) -> Napi::Value { return resultToJs(e, r); });
  });
}

// evalStep(model, images, labels | null, { labelSmoothing, classWeights, returnLogits, features })
Napi::Value evalStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto net = ModelWrap::unwrap(info[0], "model");
    auto images = TensorWrap::unwrap(info[1], "images");
    torch::Tensor labels;
    if (!info[2].IsNull() && !info[2].IsUndefined()) labels = TensorWrap::unwrap(info[2], "labels");
    auto options = info[3].As<Napi::Object>();
    auto loss = lossOptions(options);
    bool returnLogits = options.Get("returnLogits").ToBoolean();
    bool featuresInput = options.Get("features").ToBoolean();
    Amp amp = parseAmp(options.Get("amp").As<Napi::String>().Utf8Value());
    return Addon::of(env).queue().run<StepResult>(
        env,
        [net, images, labels, loss, returnLogits, featuresInput, amp] {
          torch::NoGradGuard noGrad;
          applyMasks(*net);
          torch::Tensor logits;
          {
            AutocastGuard autocast(amp, images.device());
            logits = featuresInput ? net->classify(images) : net->forward(images);
          }
          logits = logits.to(torch::kFloat);
          StepResult result;
          result.count = images.size(0);
          if (labels.defined()) {
            auto target = labels.to(images.device());
            auto [hits1, hits5] = correctCounts(logits, target);
            auto values = readScalars({crossEntropy(logits, target, loss), hits1, hits5});
            result.loss = values[0];
            result.topk.correct1 = static_cast<int64_t>(values[1]);
            result.topk.correct5 = static_cast<int64_t>(values[2]);
          }
          if (returnLogits) result.logits = logits;
          return result;
        },
        [](Napi::Env e, StepResult& r) -> Napi::Value { return resultToJs(e, r); });
  });
}

}  // namespace

void registerTraining(Napi::Env env, Napi::Object exports, Addon&) {
  exports.Set("trainStep", Napi::Function::New<trainStep>(env, "trainStep"));
  exports.Set("evalStep", Napi::Function::New<evalStep>(env, "evalStep"));
}

}  // namespace finetorch
