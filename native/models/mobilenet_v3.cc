// MobileNetV3-Large as in torchvision 0.14 (torchvision/models/mobilenetv3.py): features.0 is the
// stem Conv2dNormActivation (features.0.0 conv, features.0.1 BatchNorm), features.1..15 the
// inverted residuals (features.N.block.K.{0,1} for their Conv2dNormActivations, block.K.fc1/fc2 for
// squeeze-excitation), features.16 the last 1x1 conv; classifier = Linear(960, 1280), Hardswish,
// Dropout, Linear(1280, classes). BatchNorm is torchvision's partial(eps=0.001, momentum=0.01).
#include <algorithm>
#include <vector>

#include "net.h"

namespace finetorch {

namespace nn = torch::nn;

namespace {

// libtorch 1.13's C++ API has no Hardswish/Hardsigmoid modules; these hold no state and are named
// as torchvision's so namedModules() reads the same.
class HardswishImpl : public nn::Module {
 public:
  HardswishImpl() : nn::Module("Hardswish") {}
  torch::Tensor forward(const torch::Tensor& x) { return torch::hardswish(x); }
};
TORCH_MODULE(Hardswish);

class HardsigmoidImpl : public nn::Module {
 public:
  HardsigmoidImpl() : nn::Module("Hardsigmoid") {}
  torch::Tensor forward(const torch::Tensor& x) { return torch::hardsigmoid(x); }
};
TORCH_MODULE(Hardsigmoid);

// torchvision's models/_utils.py _make_divisible: round to the nearest multiple of `divisor`, but
// never more than 10% down.
int64_t makeDivisible(double v, int64_t divisor) {
  int64_t rounded = std::max(divisor, static_cast<int64_t>(v + divisor / 2.0) / divisor * divisor);
  if (rounded < 0.9 * v) rounded += divisor;
  return rounded;
}

enum class Act { None, ReLU, Hardswish };

// ops.misc.Conv2dNormActivation: conv without bias, BatchNorm, optional activation, registered as
// "0", "1", "2" like torchvision's Sequential (a custom module: libtorch's Sequential cannot hold a
// Sequential, its forward being a template).
class Conv2dNormActivationImpl : public nn::Module {
 public:
  Conv2dNormActivationImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t groups, Act act)
      : nn::Module("Conv2dNormActivation") {
    conv = register_module(
        "0", nn::Conv2d(nn::Conv2dOptions(in, out, kernel).stride(stride).padding((kernel - 1) / 2).groups(groups).bias(false)));
    bn = register_module("1", nn::BatchNorm2d(nn::BatchNorm2dOptions(out).eps(0.001).momentum(0.01)));
    if (act == Act::ReLU) relu = register_module("2", nn::ReLU(true));
    if (act == Act::Hardswish) hardswish = register_module("2", Hardswish());
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto out = bn->forward(conv->forward(x));
    if (relu) return relu->forward(out);
    if (hardswish) return hardswish->forward(out);
    return out;
  }
  nn::Conv2d conv{nullptr};
  nn::BatchNorm2d bn{nullptr};
  nn::ReLU relu{nullptr};
  Hardswish hardswish{nullptr};
};
TORCH_MODULE(Conv2dNormActivation);

// ops.misc.SqueezeExcitation with MobileNetV3's Hardsigmoid scale: fc1/fc2 are 1x1 convs with bias.
class SqueezeExcitationImpl : public nn::Module {
 public:
  SqueezeExcitationImpl(int64_t channels, int64_t squeeze) : nn::Module("SqueezeExcitation") {
    avgpool = register_module("avgpool", nn::AdaptiveAvgPool2d(nn::AdaptiveAvgPool2dOptions(1)));
    fc1 = register_module("fc1", nn::Conv2d(nn::Conv2dOptions(channels, squeeze, 1)));
    fc2 = register_module("fc2", nn::Conv2d(nn::Conv2dOptions(squeeze, channels, 1)));
    activation = register_module("activation", nn::ReLU());
    scale_activation = register_module("scale_activation", Hardsigmoid());
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto scale = scale_activation->forward(fc2->forward(activation->forward(fc1->forward(avgpool->forward(x)))));
    return scale * x;
  }
  nn::AdaptiveAvgPool2d avgpool{nullptr};
  nn::Conv2d fc1{nullptr}, fc2{nullptr};
  nn::ReLU activation{nullptr};
  Hardsigmoid scale_activation{nullptr};
};
TORCH_MODULE(SqueezeExcitation);

// One row of torchvision's inverted_residual_setting (Table 1 of the paper), width_mult 1.0.
struct BlockConfig {
  int64_t in, kernel, expanded, out;
  bool se, hardswish;
  int64_t stride;
};

class InvertedResidualImpl : public nn::Module {
 public:
  explicit InvertedResidualImpl(const BlockConfig& c)
      : nn::Module("InvertedResidual"), residual_(c.stride == 1 && c.in == c.out) {
    const Act act = c.hardswish ? Act::Hardswish : Act::ReLU;
    nn::Sequential layers;
    if (c.expanded != c.in) layers->push_back(Conv2dNormActivation(c.in, c.expanded, 1, 1, 1, act));
    layers->push_back(Conv2dNormActivation(c.expanded, c.expanded, c.kernel, c.stride, c.expanded, act));  // depthwise
    if (c.se) layers->push_back(SqueezeExcitation(c.expanded, makeDivisible(c.expanded / 4, 8)));
    layers->push_back(Conv2dNormActivation(c.expanded, c.out, 1, 1, 1, Act::None));
    block = register_module("block", layers);
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto out = block->forward(x);
    return residual_ ? out + x : out;
  }
  nn::Sequential block{nullptr};

 private:
  bool residual_;
};
TORCH_MODULE(InvertedResidual);

class MobileNetV3Large : public Net {
 public:
  explicit MobileNetV3Large(const NetOptions& o) {
    const std::vector<BlockConfig> setting = {
        {16, 3, 16, 16, false, false, 1},   {16, 3, 64, 24, false, false, 2},   {24, 3, 72, 24, false, false, 1},
        {24, 5, 72, 40, true, false, 2},    {40, 5, 120, 40, true, false, 1},   {40, 5, 120, 40, true, false, 1},
        {40, 3, 240, 80, false, true, 2},   {80, 3, 200, 80, false, true, 1},   {80, 3, 184, 80, false, true, 1},
        {80, 3, 184, 80, false, true, 1},   {80, 3, 480, 112, true, true, 1},   {112, 3, 672, 112, true, true, 1},
        {112, 5, 672, 160, true, true, 2},  {160, 5, 960, 160, true, true, 1},  {160, 5, 960, 160, true, true, 1},
    };
    nn::Sequential layers;
    layers->push_back(Conv2dNormActivation(3, setting.front().in, 3, 2, 1, Act::Hardswish));
    for (const auto& c : setting) layers->push_back(InvertedResidual(c));
    const int64_t lastIn = setting.back().out, lastOut = 6 * lastIn;  // 160 -> 960
    layers->push_back(Conv2dNormActivation(lastIn, lastOut, 1, 1, 1, Act::Hardswish));
    features_ = register_module("features", layers);
    avgpool_ = register_module("avgpool", nn::AdaptiveAvgPool2d(nn::AdaptiveAvgPool2dOptions(1)));
    classifier_ = register_module(
        "classifier", nn::Sequential(nn::Linear(lastOut, kLastChannel), Hardswish(), nn::Dropout(o.dropout),
                                     nn::Linear(kLastChannel, o.numClasses)));
    // torchvision's init, the head included (MobileNetV3.__init__ initialises every Linear)
    for (auto& module : modules(/*include_self=*/false)) {
      if (auto* conv = module->as<nn::Conv2d>()) {
        nn::init::kaiming_normal_(conv->weight, 0, torch::kFanOut);
        if (conv->bias.defined()) nn::init::zeros_(conv->bias);
      } else if (auto* bn = module->as<nn::BatchNorm2d>()) {
        nn::init::ones_(bn->weight);
        nn::init::zeros_(bn->bias);
      } else if (auto* linear = module->as<nn::Linear>()) {
        nn::init::normal_(linear->weight, 0, 0.01);
        nn::init::zeros_(linear->bias);
      }
    }
  }

  // The 1280-d penultimate representation: classifier.0-2 (Linear, Hardswish, Dropout), as AlexNet's
  // features() ends after its hidden layers.
  torch::Tensor features(const torch::Tensor& images) override {
    auto x = torch::flatten(avgpool_->forward(features_->forward(computeLayout(images))), 1);
    auto layer = classifier_->begin();
    for (size_t i = 0; i + 1 < classifier_->size(); i++, ++layer) x = layer->forward(x);
    return x;
  }
  torch::Tensor classify(const torch::Tensor& features) override {
    return classifier_[classifier_->size() - 1]->as<nn::Linear>()->forward(features);
  }
  std::string headPrefix() const override { return "classifier.3"; }
  int64_t featureDim() const override { return kLastChannel; }

 private:
  static constexpr int64_t kLastChannel = 1280;  // _make_divisible(1280 * 1.0, 8)
  nn::Sequential features_{nullptr};
  nn::AdaptiveAvgPool2d avgpool_{nullptr};
  nn::Sequential classifier_{nullptr};
};

}  // namespace

std::shared_ptr<Net> createMobileNetV3Large(const NetOptions& options) { return std::make_shared<MobileNetV3Large>(options); }

}  // namespace finetorch
