// AlexNet and VGG-16 as in torchvision 0.14: ReLU, pooling and dropout take Sequential indices, so
// AlexNet's weights sit at features.{0,3,6,8,10} and classifier.{1,4,6}.
#include <vector>

#include "net.h"

namespace finetorch {

namespace nn = torch::nn;

namespace {

// Runs the first `count` layers of a Sequential (Sequential::forward has no slicing).
torch::Tensor runPrefix(nn::Sequential& sequential, size_t count, torch::Tensor x) {
  auto layer = sequential->begin();
  for (size_t i = 0; i < count; i++, ++layer) x = layer->forward(x);
  return x;
}

// features -> avgpool -> flatten -> classifier, the head being the classifier's last Linear.
class ClassifierNet : public Net {
 public:
  torch::Tensor features(const torch::Tensor& images) override {
    auto x = torch::flatten(avgpool_->forward(features_->forward(computeLayout(images))), 1);
    return runPrefix(classifier_, classifier_->size() - 1, x);
  }
  torch::Tensor classify(const torch::Tensor& features) override {
    return classifier_[classifier_->size() - 1]->as<nn::Linear>()->forward(features);
  }
  std::string headPrefix() const override { return "classifier." + std::to_string(classifier_->size() - 1); }
  int64_t featureDim() const override { return 4096; }

 protected:
  nn::Sequential features_{nullptr};
  nn::AdaptiveAvgPool2d avgpool_{nullptr};
  nn::Sequential classifier_{nullptr};
};

class AlexNet : public ClassifierNet {
 public:
  explicit AlexNet(const NetOptions& o) {
    features_ = register_module(
        "features",
        nn::Sequential(nn::Conv2d(nn::Conv2dOptions(3, 64, 11).stride(4).padding(2)), nn::ReLU(true),
                       nn::MaxPool2d(nn::MaxPool2dOptions(3).stride(2)),
                       nn::Conv2d(nn::Conv2dOptions(64, 192, 5).padding(2)), nn::ReLU(true),
                       nn::MaxPool2d(nn::MaxPool2dOptions(3).stride(2)),
                       nn::Conv2d(nn::Conv2dOptions(192, 384, 3).padding(1)), nn::ReLU(true),
                       nn::Conv2d(nn::Conv2dOptions(384, 256, 3).padding(1)), nn::ReLU(true),
                       nn::Conv2d(nn::Conv2dOptions(256, 256, 3).padding(1)), nn::ReLU(true),
                       nn::MaxPool2d(nn::MaxPool2dOptions(3).stride(2))));
    avgpool_ = register_module("avgpool", nn::AdaptiveAvgPool2d(nn::AdaptiveAvgPool2dOptions({6, 6})));
    classifier_ = register_module(
        "classifier", nn::Sequential(nn::Dropout(o.dropout), nn::Linear(256 * 6 * 6, 4096), nn::ReLU(true),
                                     nn::Dropout(o.dropout), nn::Linear(4096, 4096), nn::ReLU(true),
                                     nn::Linear(4096, o.numClasses)));
  }
};

class Vgg16 : public ClassifierNet {
 public:
  explicit Vgg16(const NetOptions& o) {
    const std::vector<int> config = {64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0};
    nn::Sequential layers;
    int64_t channels = 3;
    for (int width : config) {
      if (width == 0) {
        layers->push_back(nn::MaxPool2d(nn::MaxPool2dOptions(2).stride(2)));
        continue;
      }
      nn::Conv2d conv(nn::Conv2dOptions(channels, width, 3).padding(1));
      // torchvision's VGG init: kaiming_normal_(fan_out, relu), zero bias
      nn::init::kaiming_normal_(conv->weight, 0, torch::kFanOut, torch::kReLU);
      nn::init::zeros_(conv->bias);
      layers->push_back(conv);
      layers->push_back(nn::ReLU(true));
      channels = width;
    }
    features_ = register_module("features", layers);
    avgpool_ = register_module("avgpool", nn::AdaptiveAvgPool2d(nn::AdaptiveAvgPool2dOptions({7, 7})));
    classifier_ = register_module(
        "classifier", nn::Sequential(nn::Linear(512 * 7 * 7, 4096), nn::ReLU(true), nn::Dropout(o.dropout),
                                     nn::Linear(4096, 4096), nn::ReLU(true), nn::Dropout(o.dropout),
                                     nn::Linear(4096, o.numClasses)));
    for (auto& module : classifier_->children()) {
      if (auto* linear = module->as<nn::Linear>()) {
        nn::init::normal_(linear->weight, 0, 0.01);
        nn::init::zeros_(linear->bias);
      }
    }
  }
};

}  // namespace

std::shared_ptr<Net> createAlexNet(const NetOptions& options) { return std::make_shared<AlexNet>(options); }
std::shared_ptr<Net> createVgg16(const NetOptions& options) { return std::make_shared<Vgg16>(options); }

}  // namespace finetorch
