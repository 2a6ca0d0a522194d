// HistogramObserver as torch 1.13 computes it (torch/ao/quantization/observer.py), op for op in
// float32 tensors so the bins, the merged histograms and the L2 range search round as PyTorch's
// do. That includes its quirks: histc's range is int()-truncated, and a new batch's histogram is
// merged into the old one by up-sampling to a common grid.
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include <ATen/ATen.h>

#include "quantized/observer.h"

namespace finetorch::quantized {

namespace {

constexpr int64_t kBins = 2048;
constexpr int64_t kUpsampleRate = 128;
constexpr int64_t kDstBins = 256;  // 2 ** bits of quint8

at::Tensor scalar(double value) { return at::scalar_tensor(value, at::kFloat); }

class HistogramObserver : public Observer {
 public:
  HistogramObserver(int64_t quantMin, int64_t quantMax) : quantMin_(quantMin), quantMax_(quantMax) {
    histogram_ = at::zeros({kBins}, at::kFloat);
    min_ = scalar(std::numeric_limits<double>::infinity());
    max_ = scalar(-std::numeric_limits<double>::infinity());
  }

  void observe(const torch::Tensor& values) override {
    if (values.numel() == 0) return;
    auto x = values.detach().to(at::kFloat);
    bool sameValues = min_.item<float>() == max_.item<float>();
    if (!observed() || sameValues) {
      auto [lo, hi] = at::aminmax(x);
      min_ = lo.clone();
      max_ = hi.clone();
      histogram_ = at::histc(x, kBins, truncated(min_), truncated(max_));
      return;
    }
    auto [newMin, newMax] = at::aminmax(x);
    auto combinedMin = at::minimum(newMin, min_);
    auto combinedMax = at::maximum(newMax, max_);
    // _adjust_min_max: a common grid where the old histogram's bins split into upsample_rate parts
    auto histBinWidth = (max_ - min_) / static_cast<double>(kBins * kUpsampleRate);
    auto downsampleRate = static_cast<int64_t>(at::ceil((combinedMax - combinedMin) / (histBinWidth * static_cast<double>(kBins))).item<float>());
    auto e = (histBinWidth * static_cast<double>(kBins)) * static_cast<double>(downsampleRate) - (combinedMax - combinedMin);
    combinedMax = combinedMax + e;
    auto startIdx = static_cast<int64_t>(at::round((min_ - combinedMin) / histBinWidth).item<float>());

    auto combined = at::histc(x, kBins, truncated(combinedMin), truncated(combinedMax));
    if (combinedMin.item<float>() == min_.item<float>() && combinedMax.item<float>() == max_.item<float>()) {
      combined += histogram_;
    } else {
      combined = combineHistograms(combined, histogram_, downsampleRate, startIdx);
    }
    histogram_ = combined;
    min_ = combinedMin;
    max_ = combinedMax;
  }

  QParams qparams() const override {
    if (!observed()) throw std::logic_error("observer asked for parameters before it saw any values");
    auto [newMin, newMax] = nonLinearParamSearch();
    return affineQParams(newMin, newMax, quantMin_, quantMax_);
  }

  bool observed() const override { return std::isfinite(min_.item<float>()) || std::isfinite(max_.item<float>()); }

 private:
  // Python's int(tensor): truncation toward zero.
  static double truncated(const at::Tensor& value) { return std::trunc(value.item<float>()); }

  static at::Tensor combineHistograms(const at::Tensor& origHist, const at::Tensor& newHist, int64_t downsampleRate, int64_t startIdx) {
    auto upsampled = newHist.repeat_interleave(kUpsampleRate);
    auto withOutputRange = at::zeros({kBins * downsampleRate}, at::kFloat);
    withOutputRange.slice(0, startIdx, kBins * kUpsampleRate + startIdx).copy_(upsampled);
    auto integral = at::cumsum(withOutputRange, 0, at::kDouble).slice(0, downsampleRate - 1, c10::nullopt, downsampleRate);
    auto shifted = at::zeros({kBins}, at::kFloat);
    shifted.slice(0, 1, kBins).copy_(integral.slice(0, 0, -1));
    auto interpolated = (integral - shifted) / static_cast<double>(kUpsampleRate);
    return origHist + interpolated.to(at::kFloat);
  }

  static at::Tensor norm(const at::Tensor& deltaBegin, const at::Tensor& deltaEnd, const at::Tensor& density) {
    return density * ((deltaEnd * deltaEnd * deltaEnd - deltaBegin * deltaBegin * deltaBegin) / 3);
  }

  double quantizationError(int64_t nextStartBin, int64_t nextEndBin) const {
    double binWidth = (static_cast<double>(max_.item<float>()) - static_cast<double>(min_.item<float>())) / kBins;
    double dstBinWidth = binWidth * static_cast<double>(nextEndBin - nextStartBin + 1) / kDstBins;
    if (dstBinWidth == 0.0) return 0.0;
    auto srcBin = at::arange(kBins, at::kLong);
    auto srcBinBegin = (srcBin - nextStartBin) * binWidth;
    auto srcBinEnd = srcBinBegin + binWidth;
    auto dstBinOfBegin = at::clamp(at::div(srcBinBegin, dstBinWidth, "floor"), 0, kDstBins - 1);
    auto dstBinOfBeginCenter = (dstBinOfBegin + 0.5) * dstBinWidth;
    auto dstBinOfEnd = at::clamp(at::div(srcBinEnd, dstBinWidth, "floor"), 0, kDstBins - 1);
    auto density = histogram_ / binWidth;

    auto total = at::zeros({kBins}, at::kFloat);
    auto deltaBegin = srcBinBegin - dstBinOfBeginCenter;
    total += norm(deltaBegin, at::ones({kBins}, at::kFloat) * (dstBinWidth / 2), density);
    total += (dstBinOfEnd - dstBinOfBegin - 1) * norm(scalar(-dstBinWidth / 2), scalar(dstBinWidth / 2), density);
    auto dstBinOfEndCenter = dstBinOfEnd * dstBinWidth + dstBinWidth / 2;
    auto deltaEnd = srcBinEnd - dstBinOfEndCenter;
    total += norm(scalar(-dstBinWidth / 2), deltaEnd, density);
    return total.sum().item<float>();
  }

  std::pair<at::Tensor, at::Tensor> nonLinearParamSearch() const {
    auto binWidth = (max_ - min_) / static_cast<double>(kBins);
    double total = histogram_.sum().item<float>();
    auto cSumTensor = at::cumsum(histogram_, 0).contiguous();
    const float* cSum = cSumTensor.data_ptr<float>();

    const double stepsize = 1e-5;
    double alpha = 0.0, beta = 1.0;
    int64_t startBin = 0, endBin = kBins - 1;
    double normMin = std::numeric_limits<double>::infinity();
    while (alpha < beta) {
      double nextAlpha = alpha + stepsize;
      double nextBeta = beta - stepsize;
      // tensor < python float compares in float32
      float lowTarget = static_cast<float>(nextAlpha * total);
      float highTarget = static_cast<float>(nextBeta * total);
      int64_t l = startBin, r = endBin;
      while (l < endBin && cSum[l] < lowTarget) l++;
      while (r > startBin && cSum[r] > highTarget) r--;
      int64_t nextStartBin = startBin, nextEndBin = endBin;
      if ((l - startBin) > (endBin - r)) {
        nextStartBin = l;
        alpha = nextAlpha;
      } else {
        nextEndBin = r;
        beta = nextBeta;
      }
      if (nextStartBin == startBin && nextEndBin == endBin) continue;
      double error = quantizationError(nextStartBin, nextEndBin);
      if (error > normMin) break;
      normMin = error;
      startBin = nextStartBin;
      endBin = nextEndBin;
    }
    auto newMin = min_ + binWidth * static_cast<double>(startBin);
    auto newMax = min_ + binWidth * static_cast<double>(endBin + 1);
    return {newMin, newMax};
  }

  int64_t quantMin_, quantMax_;
  at::Tensor histogram_, min_, max_;
};

}  // namespace

std::unique_ptr<Observer> makeHistogramObserver(int64_t quantMin, int64_t quantMax) {
  return std::make_unique<HistogramObserver>(quantMin, quantMax);
}

}  // namespace finetorch::quantized
