// Batch-level MixUp and CutMix as torchvision's references/classification/transforms.py
// (RandomMixup, RandomCutmix) compute them: the partner of image i is image i - 1 (batch.roll(1, 0)),
// the soft targets are lam * onehot(y) + (1 - lam) * onehot(y.roll(1)). lam and the box are drawn in
// TypeScript (lib/data/mix.ts); the same libtorch ops as the reference give the same floats.
#pragma once

#include <torch/types.h>

namespace finetorch {

struct MixBox {
  int64_t x1 = 0, y1 = 0, x2 = 0, y2 = 0;  // CutMix: the pasted region [y1, y2) x [x1, x2)
};

// Mixes `images` [N, C, H, W] in place (MixUp without a box, CutMix with one) and returns the soft
// targets [N, numClasses] in the images' floating dtype, on the labels' device.
inline torch::Tensor mixBatch(torch::Tensor images, const torch::Tensor& labels, int64_t numClasses, double lam, const MixBox* box) {
  torch::NoGradGuard noGrad;
  if (box == nullptr) {
    auto rolled = images.roll(1, 0);
    rolled.mul_(1.0 - lam);
    images.mul_(lam).add_(rolled);
  } else if (box->x2 > box->x1 && box->y2 > box->y1) {
    // only the box moves: rolling the region alone is what batch.roll(1, 0)[..., box] copies
    auto region = images.slice(2, box->y1, box->y2).slice(3, box->x1, box->x2);
    region.copy_(region.roll(1, 0));
  }
  auto target = torch::one_hot(labels.to(torch::kLong), numClasses).to(images.scalar_type());
  auto rolled = target.roll(1, 0);
  rolled.mul_(1.0 - lam);
  target.mul_(lam).add_(rolled);
  return target;
}

}  // namespace finetorch
