// Building a GradientSync over a Group (distributed builds only).
#pragma once

#ifdef FINETORCH_C10D

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/csrc/utils/tensor_flatten.h>

#include "gradient_sync.h"
#include "group.h"

// The Reducer's constructor differs between libtorch versions: 1.13 and 2.13+ are the ones this
// code is written for (1.13 tested, 2.13 compiled). Others average flat buckets after backward.
#if (TORCH_VERSION_MAJOR == 1 && TORCH_VERSION_MINOR == 13) || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 13)
#define FINETORCH_HAS_REDUCER 1
#else
#define FINETORCH_HAS_REDUCER 0
#endif

namespace finetorch {

// `params`: the trainable parameters, named, in the model's order (the same on every rank).
std::shared_ptr<GradientSync> createGradientSync(std::shared_ptr<Group> group, const std::vector<std::pair<std::string, torch::Tensor>>& params,
                                                 int64_t bucketBytes, bool flatBuckets);

}  // namespace finetorch

#endif  // FINETORCH_C10D
