// The networks finetorch builds: torch::nn modules whose registered names are torchvision's, so
// named_parameters()/named_buffers() are exactly torchvision's state_dict keys.
#pragma once

#include <memory>
#include <string>

#include <torch/nn.h>

#include "ops/winograd_conv.h"

namespace finetorch {

enum class HeadKind { Linear, Conv1x1 };

// Channel attention in every residual block of a ResNet (see attention.h).
enum class AttentionKind { None, SqueezeExcitation, Cbam };

struct NetOptions {
  std::string arch;  // alexnet, resnet18, resnet34, resnet50, vgg16, mobilenet_v3_large, efficientnet_b0
  int64_t numClasses = 1000;
  HeadKind head = HeadKind::Linear;
  double dropout = 0.5;
  // EfficientNet's stochastic depth probability (torchvision's 0.2), scaled linearly over the blocks.
  double stochasticDepth = 0.2;
  // ResNets only: SE or CBAM after each block's last BatchNorm, before the residual addition.
  AttentionKind attention = AttentionKind::None;
};

class Net : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(const torch::Tensor& images) { return classify(features(images)); }
  // The penultimate representation (AlexNet/VGG 4096-d after the last hidden ReLU, ResNet and
  // EfficientNet pooled, MobileNetV3 1280-d after classifier.0-2).
  virtual torch::Tensor features(const torch::Tensor& images) = 0;
  // The head alone, applied to features(): lets a frozen backbone's features be cached.
  virtual torch::Tensor classify(const torch::Tensor& features) = 0;
  // The state_dict prefix of the replaceable head ("fc", "classifier.6", "classifier.3", "classifier.1").
  virtual std::string headPrefix() const = 0;
  virtual int64_t featureDim() const = 0;
  // How the 3x3 convolutions of a training step are computed (ops/winograd_conv.h); the blocks
  // that use it hold this same object. Networks without such blocks ignore it.
  const std::shared_ptr<ConvolutionChoice> convolutionChoice = std::make_shared<ConvolutionChoice>();
};

std::shared_ptr<Net> createNet(const NetOptions& options);

// The layout a network computes in. On the CPU that is channels-last whatever layout the batch
// arrives in: oneDNN's NHWC convolutions need no reorder of the activations, and libtorch's
// NHWC pooling and BatchNorm kernels are vectorised across channels, where its NCHW max-pool is
// scalar (ResNet-18's stem pool, 32x64x56x56: 26.8 ms NCHW, 2.6 ms NHWC). ResNet-18 at 112²,
// batch 32, 2 cores: train 352 -> 323 ms, eval 130 -> 110 ms per batch. Outputs are the same up
// to the rounding of a different summation order. On CUDA the batch's layout decides, as in PyTorch.
inline torch::Tensor computeLayout(const torch::Tensor& images) {
  if (images.device().is_cpu() && images.dim() == 4) return images.contiguous(at::MemoryFormat::ChannelsLast);
  return images;
}

}  // namespace finetorch
