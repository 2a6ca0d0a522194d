// ResNet-18/34/50 in int8, as torchvision's quantizable ResNets after fuse_model() and convert:
// quant -> conv1+bn1+relu -> maxpool -> blocks (convs fused with their BNs, the last one without
// ReLU, downsample conv+bn, skip add fused with ReLU) -> avgpool -> fc -> dequant.
#include <ATen/ATen.h>

#include "quantized/engine.h"
#include "quantized/ops.h"
#include "quantized/quantize_images.h"
#include "quantized/quantized_net.h"

namespace finetorch::quantized {

namespace {

class Maker {
 public:
  Maker(const NamedTensors& weights, const QuantizeOptions& options)
      : weights_(weights), kind_(options.observer), reduceRange_(engineReducesRange(options.engine)) {}

  std::unique_ptr<Observer> observer() const { return makeObserver(kind_, reduceRange_); }

  // conv `convName` (no bias) followed by BatchNorm `bnName`
  QuantizedConv conv(const std::string& convName, const std::string& bnName, int64_t stride, bool relu) const {
    const auto& weight = stateEntry(weights_, convName + ".weight");
    BatchNormState bn{stateEntry(weights_, bnName + ".weight"), stateEntry(weights_, bnName + ".bias"),
                      stateEntry(weights_, bnName + ".running_mean"), stateEntry(weights_, bnName + ".running_var")};
    return QuantizedConv(fuseConvBatchNorm(weight, {}, bn), stride, weight.size(2) / 2, relu, observer());
  }

  bool has(const std::string& name) const { return weights_.count(name) > 0; }
  const torch::Tensor& at(const std::string& name) const { return stateEntry(weights_, name); }

 private:
  const NamedTensors& weights_;
  std::string kind_;
  bool reduceRange_;
};

struct Block {
  std::string name;
  std::string addName;  // torchvision's: add_relu in BasicBlock, skip_add_relu in Bottleneck
  std::vector<QuantizedConv> convs;  // ReLU after each but the last
  std::vector<QuantizedConv> downsample;  // empty or one
  ActivationPoint addRelu;

  torch::Tensor calibrate(const torch::Tensor& x) {
    auto out = x;
    for (auto& c : convs) out = c.calibrate(out);
    auto identity = downsample.empty() ? x : downsample[0].calibrate(x);
    out = at::relu(out + identity);
    addRelu.observe(out);
    return out;
  }

  torch::Tensor forward(const torch::Tensor& qx) const {
    auto out = qx;
    for (const auto& c : convs) out = c.forward(out);
    auto identity = downsample.empty() ? qx : downsample[0].forward(qx);
    return ops::addRelu(out, identity, addRelu.qparams().scale, addRelu.qparams().zeroPoint);
  }

  void finalize() {
    for (auto& c : convs) c.finalize();
    for (auto& d : downsample) d.finalize();
    addRelu.finalize();
  }

  void exportState(NamedTensors& out) const {
    for (size_t i = 0; i < convs.size(); i++) convs[i].exportState(name + ".conv" + std::to_string(i + 1) + ".", out);
    for (const auto& d : downsample) d.exportState(name + ".downsample.0.", out);
    addRelu.exportState(name + "." + addName + ".", out);
  }

  void importState(const NamedTensors& in) {
    for (size_t i = 0; i < convs.size(); i++) convs[i].importState(name + ".conv" + std::to_string(i + 1) + ".", in);
    for (auto& d : downsample) d.importState(name + ".downsample.0.", in);
    addRelu.importState(name + "." + addName + ".", in);
  }
};

class QuantizedResNet : public QuantizedNet {
 public:
  explicit QuantizedResNet(const Maker& maker)
      : quant_(maker.observer()), stem_(maker.conv("conv1", "bn1", 2, true)),
        fc_(maker.at("fc.weight"), maker.at("fc.bias"), false, maker.observer()) {
    bool bottleneck = maker.has("layer1.0.conv3.weight");
    for (int stage = 1; stage <= 4; stage++) {
      for (int i = 0; maker.has("layer" + std::to_string(stage) + "." + std::to_string(i) + ".conv1.weight"); i++) {
        std::string name = "layer" + std::to_string(stage) + "." + std::to_string(i);
        int64_t stride = (i == 0 && stage > 1) ? 2 : 1;
        Block block{name, bottleneck ? "skip_add_relu" : "add_relu", {}, {}, ActivationPoint(maker.observer())};
        int convCount = bottleneck ? 3 : 2;
        for (int c = 1; c <= convCount; c++) {
          // the stride sits on conv1 of a basic block, on the 3x3 conv2 of a bottleneck (v1.5)
          int64_t s = (bottleneck ? c == 2 : c == 1) ? stride : 1;
          block.convs.push_back(maker.conv(name + ".conv" + std::to_string(c), name + ".bn" + std::to_string(c), s, c < convCount));
        }
        if (maker.has(name + ".downsample.0.weight")) {
          block.downsample.push_back(maker.conv(name + ".downsample.0", name + ".downsample.1", stride, false));
        }
        blocks_.push_back(std::move(block));
      }
    }
  }

  void calibrate(const torch::Tensor& images) override {
    at::NoGradGuard noGrad;
    quant_.observe(images);
    auto x = stem_.calibrate(images);
    x = at::max_pool2d(x, {3, 3}, {2, 2}, {1, 1}, {1, 1});  // quantized max_pool2d reads two dilations
    for (auto& block : blocks_) x = block.calibrate(x);
    x = at::flatten(at::adaptive_avg_pool2d(x, {1, 1}), 1);
    fc_.calibrate(x);
  }

  void finalize() override {
    quant_.finalize();
    stem_.finalize();
    for (auto& block : blocks_) block.finalize();
    fc_.finalize();
  }

  torch::Tensor quantizeInput(const torch::Tensor& images) const override { return quantizeImages(images, quant_.qparams()); }

  torch::Tensor forward(const torch::Tensor& images) const override {
    at::NoGradGuard noGrad;
    auto x = quantizeImages(images, quant_.qparams());
    x = stem_.forward(x);
    x = at::max_pool2d(x, {3, 3}, {2, 2}, {1, 1}, {1, 1});  // quantized max_pool2d reads two dilations
    for (const auto& block : blocks_) x = block.forward(x);
    x = at::flatten(at::adaptive_avg_pool2d(x, {1, 1}), 1);
    return at::dequantize(fc_.forward(x));
  }

  NamedTensors state() const override {
    NamedTensors out;
    quant_.exportState("quant.", out);
    stem_.exportState("conv1.", out);
    for (const auto& block : blocks_) block.exportState(out);
    fc_.exportState("fc.", out);
    return out;
  }

  void loadState(const NamedTensors& in) override {
    quant_.importState("quant.", in);
    stem_.importState("conv1.", in);
    for (auto& block : blocks_) block.importState(in);
    fc_.importState("fc.", in);
  }

 private:
  ActivationPoint quant_;
  QuantizedConv stem_;
  std::vector<Block> blocks_;
  QuantizedLinear fc_;
};

}  // namespace

std::unique_ptr<QuantizedNet> buildQuantizedResNet(const NamedTensors& weights, const QuantizeOptions& options) {
  return std::make_unique<QuantizedResNet>(Maker(weights, options));
}

}  // namespace finetorch::quantized
