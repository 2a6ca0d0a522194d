// AlexNet in int8: each conv and hidden linear fused with its ReLU (nniq.ConvReLU2d,
// nniq.LinearReLU), max/adaptive-average pooling on quint8, dropout gone (eval).
#include <ATen/ATen.h>

#include "quantized/engine.h"
#include "quantized/quantize_images.h"
#include "quantized/quantized_net.h"

namespace finetorch::quantized {

namespace {

struct ConvSpec {
  int index;  // features.<index>
  int64_t stride, padding;
  bool poolAfter;
};

// torchvision 0.14's AlexNet features
const ConvSpec kConvs[] = {{0, 4, 2, true}, {3, 1, 2, true}, {6, 1, 1, false}, {8, 1, 1, false}, {10, 1, 1, true}};
const int kLinears[] = {1, 4, 6};  // classifier.<index>; ReLU after all but the last

class QuantizedAlexNet : public QuantizedNet {
 public:
  QuantizedAlexNet(const NamedTensors& weights, const QuantizeOptions& options) : quant_(observer(options)) {
    for (const auto& spec : kConvs) {
      std::string name = "features." + std::to_string(spec.index);
      FusedWeights w{stateEntry(weights, name + ".weight").contiguous(), stateEntry(weights, name + ".bias").contiguous()};
      convs_.emplace_back(w, spec.stride, spec.padding, true, observer(options));
    }
    for (int index : kLinears) {
      std::string name = "classifier." + std::to_string(index);
      linears_.emplace_back(stateEntry(weights, name + ".weight"), stateEntry(weights, name + ".bias"), index != 6, observer(options));
    }
  }

  void calibrate(const torch::Tensor& images) override {
    at::NoGradGuard noGrad;
    quant_.observe(images);
    auto x = images;
    for (size_t i = 0; i < convs_.size(); i++) {
      x = convs_[i].calibrate(x);
      if (kConvs[i].poolAfter) x = at::max_pool2d(x, {3, 3}, {2, 2}, {0, 0}, {1, 1});
    }
    x = at::flatten(at::adaptive_avg_pool2d(x, {6, 6}), 1);
    for (auto& l : linears_) x = l.calibrate(x);
  }

  void finalize() override {
    quant_.finalize();
    for (auto& c : convs_) c.finalize();
    for (auto& l : linears_) l.finalize();
  }

  torch::Tensor quantizeInput(const torch::Tensor& images) const override { return quantizeImages(images, quant_.qparams()); }

  torch::Tensor forward(const torch::Tensor& images) const override {
    at::NoGradGuard noGrad;
    auto x = quantizeImages(images, quant_.qparams());
    for (size_t i = 0; i < convs_.size(); i++) {
      x = convs_[i].forward(x);
      if (kConvs[i].poolAfter) x = at::max_pool2d(x, {3, 3}, {2, 2}, {0, 0}, {1, 1});
    }
    x = at::flatten(at::adaptive_avg_pool2d(x, {6, 6}), 1);
    for (const auto& l : linears_) x = l.forward(x);
    return at::dequantize(x);
  }

  NamedTensors state() const override {
    NamedTensors out;
    quant_.exportState("quant.", out);
    for (size_t i = 0; i < convs_.size(); i++) convs_[i].exportState("features." + std::to_string(kConvs[i].index) + ".", out);
    for (size_t i = 0; i < linears_.size(); i++) linears_[i].exportState("classifier." + std::to_string(kLinears[i]) + ".", out);
    return out;
  }

  void loadState(const NamedTensors& in) override {
    quant_.importState("quant.", in);
    for (size_t i = 0; i < convs_.size(); i++) convs_[i].importState("features." + std::to_string(kConvs[i].index) + ".", in);
    for (size_t i = 0; i < linears_.size(); i++) linears_[i].importState("classifier." + std::to_string(kLinears[i]) + ".", in);
  }

 private:
  static std::unique_ptr<Observer> observer(const QuantizeOptions& options) {
    return makeObserver(options.observer, engineReducesRange(options.engine));
  }

  ActivationPoint quant_;
  std::vector<QuantizedConv> convs_;
  std::vector<QuantizedLinear> linears_;
};

}  // namespace

std::unique_ptr<QuantizedNet> buildQuantizedAlexNet(const NamedTensors& weights, const QuantizeOptions& options) {
  return std::make_unique<QuantizedAlexNet>(weights, options);
}

}  // namespace finetorch::quantized
