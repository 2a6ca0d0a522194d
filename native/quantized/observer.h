// Activation observers: record what a point of the float network emits during calibration, then
// give the quint8 per-tensor affine parameters PyTorch's observer of the same kind would.
#pragma once

#include <memory>
#include <string>

#include <torch/types.h>

#include "quantized/qparams.h"

namespace finetorch::quantized {

class Observer {
 public:
  virtual ~Observer() = default;
  virtual void observe(const torch::Tensor& values) = 0;
  virtual QParams qparams() const = 0;
  virtual bool observed() const = 0;
};

// kind: "histogram" (HistogramObserver: 2048 bins, L2 search for the range, PyTorch's default
// qconfig) or "minmax" (MinMaxObserver). reduceRange: quint8 over [0, 127] instead of [0, 255].
std::unique_ptr<Observer> makeObserver(const std::string& kind, bool reduceRange);

std::unique_ptr<Observer> makeMinMaxObserver(int64_t quantMin, int64_t quantMax);
std::unique_ptr<Observer> makeHistogramObserver(int64_t quantMin, int64_t quantMax);

}  // namespace finetorch::quantized
