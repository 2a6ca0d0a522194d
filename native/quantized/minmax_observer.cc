// MinMaxObserver: the running minimum and maximum of everything observed.
#include <limits>
#include <stdexcept>

#include <ATen/ATen.h>

#include "quantized/observer.h"

namespace finetorch::quantized {

namespace {

class MinMaxObserver : public Observer {
 public:
  MinMaxObserver(int64_t quantMin, int64_t quantMax) : quantMin_(quantMin), quantMax_(quantMax) {}

  void observe(const torch::Tensor& values) override {
    if (values.numel() == 0) return;
    auto [lo, hi] = at::aminmax(values.detach().to(at::kFloat));
    min_ = min_.defined() ? at::minimum(min_, lo) : lo;
    max_ = max_.defined() ? at::maximum(max_, hi) : hi;
  }

  QParams qparams() const override {
    if (!observed()) throw std::logic_error("observer asked for parameters before it saw any values");
    return affineQParams(min_, max_, quantMin_, quantMax_);
  }

  bool observed() const override { return min_.defined(); }

 private:
  int64_t quantMin_, quantMax_;
  torch::Tensor min_, max_;
};

}  // namespace

std::unique_ptr<Observer> makeMinMaxObserver(int64_t quantMin, int64_t quantMax) {
  return std::make_unique<MinMaxObserver>(quantMin, quantMax);
}

std::unique_ptr<Observer> makeObserver(const std::string& kind, bool reduceRange) {
  int64_t quantMax = reduceRange ? 127 : 255;
  if (kind == "minmax") return makeMinMaxObserver(0, quantMax);
  if (kind == "histogram") return makeHistogramObserver(0, quantMax);
  throw std::invalid_argument("unknown observer '" + kind + "' (expected histogram or minmax)");
}

}  // namespace finetorch::quantized
