#include "net.h"

#include <stdexcept>

namespace finetorch {

std::shared_ptr<Net> createAlexNet(const NetOptions& options);
std::shared_ptr<Net> createVgg16(const NetOptions& options);
std::shared_ptr<Net> createResNet(const NetOptions& options);
std::shared_ptr<Net> createMobileNetV3Large(const NetOptions& options);
std::shared_ptr<Net> createEfficientNet(const NetOptions& options);

std::shared_ptr<Net> createNet(const NetOptions& options) {
  if (options.head == HeadKind::Conv1x1 && options.arch.rfind("resnet", 0) != 0) {
    throw std::invalid_argument("head 'conv1x1' is only defined for ResNets, not " + options.arch);
  }
  if (options.attention != AttentionKind::None && options.arch.rfind("resnet", 0) != 0) {
    throw std::invalid_argument("attention is only defined for ResNets, not " + options.arch);
  }
  if (options.arch == "alexnet") return createAlexNet(options);
  if (options.arch == "vgg16") return createVgg16(options);
  if (options.arch == "resnet18" || options.arch == "resnet34" || options.arch == "resnet50") return createResNet(options);
  if (options.arch == "mobilenet_v3_large") return createMobileNetV3Large(options);
  if (options.arch == "efficientnet_b0") return createEfficientNet(options);
  throw std::invalid_argument("unknown architecture '" + options.arch + "'");
}

}  // namespace finetorch
