// EfficientNet-B0 as in torchvision 0.14 (models/efficientnet.py): features.0 is the stem
// Conv2dNormActivation (conv, bn, SiLU), features.1..7 the MBConv stages, features.8 the 1x1
// conv to 1280 channels; each MBConv is block.{expand?, depthwise, SqueezeExcitation, project}
// plus stochastic_depth. B0 keeps BatchNorm2d's defaults (eps 1e-5, momentum 0.1): torchvision
// passes eps/momentum only for B5-B7 and V2. State_dict keys are torchvision's to the letter.
#include <cmath>
#include <vector>

#include "net.h"

namespace finetorch {

namespace nn = torch::nn;

namespace {

// nn::Sequential cannot hold a Sequential (its forward() is a template, which AnyModule cannot
// store); these subclasses with a plain forward() can be nested, as torchvision nests them.
class SequentialBlockImpl : public nn::SequentialImpl {
 public:
  torch::Tensor forward(const torch::Tensor& x) { return nn::SequentialImpl::forward(x); }
};

// torchvision's Conv2dNormActivation: bias-free conv with "same" padding, BatchNorm, optional SiLU.
class Conv2dNormActivationImpl : public SequentialBlockImpl {
 public:
  Conv2dNormActivationImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t groups, bool activation) {
    push_back(nn::Conv2d(
        nn::Conv2dOptions(in, out, kernel).stride(stride).padding((kernel - 1) / 2).groups(groups).bias(false)));
    push_back(nn::BatchNorm2d(out));
    if (activation) push_back(nn::SiLU());
  }
};
TORCH_MODULE(Conv2dNormActivation);

// One stage of MBConv blocks (features.1 .. features.7).
class StageImpl : public SequentialBlockImpl {};
TORCH_MODULE(Stage);

// torchvision.ops.SqueezeExcitation with EfficientNet's SiLU (delta) and Sigmoid (sigma).
class SqueezeExcitationImpl : public nn::Module {
 public:
  SqueezeExcitationImpl(int64_t channels, int64_t squeeze) {
    avgpool = register_module("avgpool", nn::AdaptiveAvgPool2d(nn::AdaptiveAvgPool2dOptions(1)));
    fc1 = register_module("fc1", nn::Conv2d(nn::Conv2dOptions(channels, squeeze, 1)));
    fc2 = register_module("fc2", nn::Conv2d(nn::Conv2dOptions(squeeze, channels, 1)));
    activation = register_module("activation", nn::SiLU());
    scale_activation = register_module("scale_activation", nn::Sigmoid());
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto scale = scale_activation->forward(fc2->forward(activation->forward(fc1->forward(avgpool->forward(x)))));
    return scale * x;
  }
  nn::AdaptiveAvgPool2d avgpool{nullptr};
  nn::Conv2d fc1{nullptr}, fc2{nullptr};
  nn::SiLU activation{nullptr};
  nn::Sigmoid scale_activation{nullptr};
};
TORCH_MODULE(SqueezeExcitation);

// torchvision.ops.StochasticDepth(p, "row"): identity in eval; in training each sample's residual
// branch is dropped with probability p and the survivors scaled by 1/(1-p). The noise is drawn as
// torchvision draws it (empty [N,1,1,1], bernoulli_(survival), div_), so on the same generator
// state the same rows drop as in PyTorch.
class StochasticDepthImpl : public nn::Module {
 public:
  explicit StochasticDepthImpl(double p) : p_(p) {}
  torch::Tensor forward(const torch::Tensor& input) {
    if (!is_training() || p_ == 0.0) return input;
    const double survival = 1.0 - p_;
    std::vector<int64_t> size(input.dim(), 1);
    size[0] = input.size(0);
    auto noise = torch::empty(size, torch::TensorOptions().dtype(input.dtype()).device(input.device()));
    noise.bernoulli_(survival);
    if (survival > 0.0) noise.div_(survival);
    return input * noise;
  }
  double p() const { return p_; }

 private:
  double p_;
};
TORCH_MODULE(StochasticDepth);

class MBConvImpl : public nn::Module {
 public:
  MBConvImpl(int64_t expandRatio, int64_t kernel, int64_t stride, int64_t in, int64_t out, double stochasticDepthProb)
      : residual_(stride == 1 && in == out) {
    nn::Sequential layers;
    const int64_t expanded = in * expandRatio;  // _make_divisible(in * ratio, 8) is exact for B0's widths
    if (expanded != in) layers->push_back(Conv2dNormActivation(in, expanded, 1, 1, 1, true));
    layers->push_back(Conv2dNormActivation(expanded, expanded, kernel, stride, expanded, true));  // depthwise
    layers->push_back(SqueezeExcitation(expanded, std::max<int64_t>(1, in / 4)));
    layers->push_back(Conv2dNormActivation(expanded, out, 1, 1, 1, false));  // project, no activation
    block = register_module("block", layers);
    stochastic_depth = register_module("stochastic_depth", StochasticDepth(stochasticDepthProb));
  }
  torch::Tensor forward(const torch::Tensor& input) {
    auto result = block->forward(input);
    if (residual_) {
      result = stochastic_depth->forward(result);
      result += input;
    }
    return result;
  }
  nn::Sequential block{nullptr};
  StochasticDepth stochastic_depth{nullptr};

 private:
  bool residual_;
};
TORCH_MODULE(MBConv);

struct StageConfig {
  int64_t expandRatio, kernel, stride, in, out, layers;
};

class EfficientNetB0 : public Net {
 public:
  explicit EfficientNetB0(const NetOptions& o) {
    // torchvision's _efficientnet_conf("efficientnet_b0"): width and depth multipliers 1.0
    const std::vector<StageConfig> stages = {
        {1, 3, 1, 32, 16, 1}, {6, 3, 2, 16, 24, 2}, {6, 5, 2, 24, 40, 2}, {6, 3, 2, 40, 80, 3},
        {6, 5, 1, 80, 112, 3}, {6, 5, 2, 112, 192, 4}, {6, 3, 1, 192, 320, 1},
    };
    int64_t totalBlocks = 0;
    for (const auto& s : stages) totalBlocks += s.layers;
    nn::Sequential layers;
    layers->push_back(Conv2dNormActivation(3, 32, 3, 2, 1, true));
    int64_t blockId = 0;
    for (const auto& s : stages) {
      Stage stage;
      for (int64_t i = 0; i < s.layers; i++) {
        // the stage's later blocks keep its width and stride 1; stochastic depth grows linearly with depth
        const double sdProb = o.stochasticDepth * static_cast<double>(blockId) / static_cast<double>(totalBlocks);
        stage->push_back(MBConv(s.expandRatio, s.kernel, i == 0 ? s.stride : 1, i == 0 ? s.in : s.out, s.out, sdProb));
        blockId++;
      }
      layers->push_back(stage);
    }
    layers->push_back(Conv2dNormActivation(320, 1280, 1, 1, 1, true));
    features_ = register_module("features", layers);
    avgpool_ = register_module("avgpool", nn::AdaptiveAvgPool2d(nn::AdaptiveAvgPool2dOptions(1)));
    // not in place (torchvision's is): classify() runs on cached features, which must not change
    classifier_ = register_module(
        "classifier", nn::Sequential(nn::Dropout(o.dropout), nn::Linear(1280, o.numClasses)));
    // torchvision's init: convs kaiming_normal_(fan_out) with zero bias, BatchNorm 1/0, the
    // Linear uniform(+-1/sqrt(out_features)) with zero bias
    for (auto& module : modules(/*include_self=*/false)) {
      if (auto* c = module->as<nn::Conv2d>()) {
        nn::init::kaiming_normal_(c->weight, 0, torch::kFanOut);
        if (c->bias.defined()) nn::init::zeros_(c->bias);
      } else if (auto* b = module->as<nn::BatchNorm2d>()) {
        nn::init::ones_(b->weight);
        nn::init::zeros_(b->bias);
      } else if (auto* l = module->as<nn::Linear>()) {
        const double range = 1.0 / std::sqrt(static_cast<double>(l->options.out_features()));
        nn::init::uniform_(l->weight, -range, range);
        nn::init::zeros_(l->bias);
      }
    }
  }

  torch::Tensor features(const torch::Tensor& images) override {
    return torch::flatten(avgpool_->forward(features_->forward(computeLayout(images))), 1);
  }
  torch::Tensor classify(const torch::Tensor& features) override { return classifier_->forward(features); }
  std::string headPrefix() const override { return "classifier.1"; }
  int64_t featureDim() const override { return 1280; }

 private:
  nn::Sequential features_{nullptr};
  nn::AdaptiveAvgPool2d avgpool_{nullptr};
  nn::Sequential classifier_{nullptr};
};

}  // namespace

std::shared_ptr<Net> createEfficientNet(const NetOptions& options) { return std::make_shared<EfficientNetB0>(options); }

}  // namespace finetorch
