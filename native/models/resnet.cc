// ResNet-18/34/50 as in torchvision 0.14 (conv1, bn1, layer1..4, fc; blocks with conv1/bn1/...,
// downsample.{0,1}), with either torchvision's Linear head or the seed's 1x1-conv head applied to
// the layer4 map before global average pooling. Optionally SE or CBAM attention in every block
// (attention.h), applied to the last BatchNorm's output before the residual addition.
#include <vector>

#include "attention.h"
#include "net.h"

namespace finetorch {

namespace nn = torch::nn;

namespace {

nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2).bias(false));
}

class BasicBlockImpl : public nn::Module {
 public:
  static constexpr int64_t kExpansion = 1;
  BasicBlockImpl(int64_t in, int64_t planes, int64_t stride, AttentionKind attentionKind,
                 std::shared_ptr<ConvolutionChoice> choice)
      : choice_(std::move(choice)) {
    conv1 = register_module("conv1", conv(in, planes, 3, stride));
    bn1 = register_module("bn1", nn::BatchNorm2d(planes));
    conv2 = register_module("conv2", conv(planes, planes, 3));
    bn2 = register_module("bn2", nn::BatchNorm2d(planes));
    attention = BlockAttention(*this, attentionKind, planes);
    if (stride != 1 || in != planes) {
      downsample = register_module("downsample", nn::Sequential(conv(in, planes, 1, stride), nn::BatchNorm2d(planes)));
    }
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto out = bn1->forward(convolve(*conv1, x, choice_.get())).relu_();
    out = attention(bn2->forward(convolve(*conv2, out, choice_.get())));
    out += downsample ? downsample->forward(x) : x;
    return torch::relu_(out);
  }
  nn::Conv2d conv1{nullptr}, conv2{nullptr};
  nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
  BlockAttention attention;
  nn::Sequential downsample{nullptr};

 private:
  std::shared_ptr<ConvolutionChoice> choice_;
};
TORCH_MODULE(BasicBlock);

class BottleneckImpl : public nn::Module {
 public:
  static constexpr int64_t kExpansion = 4;
  BottleneckImpl(int64_t in, int64_t planes, int64_t stride, AttentionKind attentionKind,
                 std::shared_ptr<ConvolutionChoice> choice)
      : choice_(std::move(choice)) {
    conv1 = register_module("conv1", conv(in, planes, 1));
    bn1 = register_module("bn1", nn::BatchNorm2d(planes));
    conv2 = register_module("conv2", conv(planes, planes, 3, stride));  // stride on the 3x3 (v1.5)
    bn2 = register_module("bn2", nn::BatchNorm2d(planes));
    conv3 = register_module("conv3", conv(planes, planes * kExpansion, 1));
    bn3 = register_module("bn3", nn::BatchNorm2d(planes * kExpansion));
    attention = BlockAttention(*this, attentionKind, planes * kExpansion);
    if (stride != 1 || in != planes * kExpansion) {
      downsample = register_module(
          "downsample", nn::Sequential(conv(in, planes * kExpansion, 1, stride), nn::BatchNorm2d(planes * kExpansion)));
    }
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto out = bn1->forward(conv1->forward(x)).relu_();
    out = bn2->forward(convolve(*conv2, out, choice_.get())).relu_();
    out = attention(bn3->forward(conv3->forward(out)));
    out += downsample ? downsample->forward(x) : x;
    return torch::relu_(out);
  }
  nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  nn::BatchNorm2d bn1{nullptr}, bn2{nullptr}, bn3{nullptr};
  BlockAttention attention;
  nn::Sequential downsample{nullptr};

 private:
  std::shared_ptr<ConvolutionChoice> choice_;
};
TORCH_MODULE(Bottleneck);

template <typename Block>
class ResNet : public Net {
 public:
  ResNet(const std::vector<int64_t>& depths, const NetOptions& o) : head_(o.head) {
    constexpr int64_t expansion = Block::Impl::kExpansion;
    conv1 = register_module("conv1", nn::Conv2d(nn::Conv2dOptions(3, 64, 7).stride(2).padding(3).bias(false)));
    bn1 = register_module("bn1", nn::BatchNorm2d(64));
    const int64_t planes[] = {64, 128, 256, 512};
    for (size_t stage = 0; stage < 4; stage++) {
      nn::Sequential blocks;
      for (int64_t i = 0; i < depths[stage]; i++) {
        int64_t stride = (i == 0 && stage > 0) ? 2 : 1;
        blocks->push_back(Block(inplanes_, planes[stage], stride, o.attention, convolutionChoice));
        inplanes_ = planes[stage] * expansion;
      }
      layers_.push_back(register_module("layer" + std::to_string(stage + 1), blocks));
    }
    // torchvision's init, before the head so the head keeps PyTorch's default layer init
    for (auto& module : modules(/*include_self=*/false)) {
      if (auto* c = module->as<nn::Conv2d>()) {
        nn::init::kaiming_normal_(c->weight, 0, torch::kFanOut, torch::kReLU);
      } else if (auto* b = module->as<nn::BatchNorm2d>()) {
        nn::init::ones_(b->weight);
        nn::init::zeros_(b->bias);
      }
    }
    for (auto& module : modules(/*include_self=*/false)) {
      if (auto* cbam = module->as<CbamImpl>()) cbam->initialise();
    }
    if (head_ == HeadKind::Linear) {
      fc = register_module("fc", nn::Linear(512 * expansion, o.numClasses));
    } else {
      fcConv = register_module("fc", nn::Conv2d(nn::Conv2dOptions(512 * expansion, o.numClasses, 1)));
    }
    featureDim_ = 512 * expansion;
  }

  torch::Tensor backbone(const torch::Tensor& images) {
    auto x = bn1->forward(conv1->forward(computeLayout(images))).relu_();
    x = torch::max_pool2d(x, 3, 2, 1);
    for (auto& layer : layers_) x = layer->forward(x);
    return x;
  }

  torch::Tensor forward(const torch::Tensor& images) override {
    auto map = backbone(images);
    if (head_ == HeadKind::Conv1x1) return torch::flatten(torch::adaptive_avg_pool2d(fcConv->forward(map), {1, 1}), 1);
    return fc->forward(torch::flatten(torch::adaptive_avg_pool2d(map, {1, 1}), 1));
  }

  torch::Tensor features(const torch::Tensor& images) override {
    return torch::flatten(torch::adaptive_avg_pool2d(backbone(images), {1, 1}), 1);
  }

  // A 1x1 conv commutes with averaging, so on pooled features it is the same map as on the grid.
  torch::Tensor classify(const torch::Tensor& features) override {
    if (head_ == HeadKind::Conv1x1) return torch::flatten(fcConv->forward(features.unsqueeze(-1).unsqueeze(-1)), 1);
    return fc->forward(features);
  }

  std::string headPrefix() const override { return "fc"; }
  int64_t featureDim() const override { return featureDim_; }

 private:
  HeadKind head_;
  int64_t inplanes_ = 64;
  int64_t featureDim_ = 512;
  nn::Conv2d conv1{nullptr};
  nn::BatchNorm2d bn1{nullptr};
  std::vector<nn::Sequential> layers_;
  nn::Linear fc{nullptr};
  nn::Conv2d fcConv{nullptr};
};

}  // namespace

std::shared_ptr<Net> createResNet(const NetOptions& options) {
  if (options.arch == "resnet18") return std::make_shared<ResNet<BasicBlock>>(std::vector<int64_t>{2, 2, 2, 2}, options);
  if (options.arch == "resnet34") return std::make_shared<ResNet<BasicBlock>>(std::vector<int64_t>{3, 4, 6, 3}, options);
  return std::make_shared<ResNet<Bottleneck>>(std::vector<int64_t>{3, 4, 6, 3}, options);
}

}  // namespace finetorch
