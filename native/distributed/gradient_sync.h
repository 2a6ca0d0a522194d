// Averaging gradients across the ranks of a distributed run, called by the train step around its
// forward and backward. A null GradientSync is a single-process step.
#pragma once

#include <memory>
#include <string>

#include <napi.h>
#include <torch/types.h>

namespace finetorch {

class GradientSync {
 public:
  virtual ~GradientSync() = default;
  // DDP's forward: rebuild buckets after the first step, note the forward's start.
  virtual void beforeForward() {}
  // Between forward and backward: arm the autograd hooks that all-reduce buckets as they fill.
  virtual void beforeBackward() {}
  // After backward: the gradients must be averaged when this returns.
  virtual void afterBackward() {}
  // "reducer" (DDP's Reducer: all-reduce overlaps backward) or "flat-buckets" (after backward).
  virtual std::string mode() const = 0;
};

// The GradientSync behind a JS value, or null for null/undefined (a plain step).
std::shared_ptr<GradientSync> unwrapGradientSync(Napi::Value value);

}  // namespace finetorch
