// Cross-entropy and top-k counting shared by the backward, train and eval steps.
#pragma once

#include <algorithm>

#include <torch/nn/functional/loss.h>
#include <torch/types.h>

namespace finetorch {

struct LossOptions {
  double labelSmoothing = 0;
  torch::Tensor classWeights;  // undefined: unweighted
};

inline torch::Tensor crossEntropy(const torch::Tensor& logits, const torch::Tensor& labels, const LossOptions& options) {
  namespace F = torch::nn::functional;
  auto opts = F::CrossEntropyFuncOptions().label_smoothing(options.labelSmoothing);
  if (options.classWeights.defined()) opts = opts.weight(options.classWeights.to(logits.device(), logits.scalar_type()));
  // float32 loss even when logits come from a lower-precision autocast region
  return F::cross_entropy(logits.to(torch::kFloat), labels, opts);
}

struct TopK {
  int64_t correct1 = 0;
  int64_t correct5 = 0;
};

// Top-1 and top-5 hit counts left on the logits' device: read back together with the loss, so a
// step waits on the GPU once.
inline std::pair<torch::Tensor, torch::Tensor> correctCounts(const torch::Tensor& logits, const torch::Tensor& labels) {
  torch::NoGradGuard noGrad;
  int64_t k = std::min<int64_t>(5, logits.size(1));
  auto top = std::get<1>(logits.topk(k, 1));
  auto hits = top.eq(labels.view({-1, 1}));
  return {hits.narrow(1, 0, 1).sum(), hits.sum()};
}

inline TopK countCorrect(const torch::Tensor& logits, const torch::Tensor& labels) {
  auto [hits1, hits5] = correctCounts(logits, labels);
  return {hits1.item<int64_t>(), hits5.item<int64_t>()};
}

}  // namespace finetorch
