// Attention modules for residual blocks, placed after the block's last BatchNorm and before the
// residual addition, as both papers place them. State_dict keys under the block:
//   SE   (Hu et al. 2018):  se.fc1.{weight,bias} [C/16, C], se.fc2.{weight,bias} [C, C/16]
//   CBAM (Woo et al. 2018, github.com/Jongchan/attention-module):
//        cbam.channel.fc1.*, cbam.channel.fc2.* (the shared MLP of the channel gate),
//        cbam.spatial.conv.weight [1, 2, 7, 7], cbam.spatial.bn.* (BatchNorm, eps 1e-5, momentum 0.01)
#pragma once

#include <torch/nn.h>

#include "net.h"

namespace finetorch {

// The channel reduction of both papers' MLPs.
constexpr int64_t kAttentionReduction = 16;

// Squeeze-and-excitation: global average pool -> FC C->C/16 -> ReLU -> FC C/16->C -> sigmoid, scale.
class SqueezeExcitationBlockImpl : public torch::nn::Module {
 public:
  explicit SqueezeExcitationBlockImpl(int64_t channels);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(SqueezeExcitationBlock);

// CBAM's channel gate: one MLP over the average- and the max-pooled vectors, summed, sigmoid, scale.
class ChannelGateImpl : public torch::nn::Module {
 public:
  explicit ChannelGateImpl(int64_t channels);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(ChannelGate);

// CBAM's spatial gate: [channel max, channel mean] -> 7x7 conv 2->1 -> BatchNorm -> sigmoid, scale.
class SpatialGateImpl : public torch::nn::Module {
 public:
  SpatialGateImpl();
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Conv2d conv{nullptr};
  torch::nn::BatchNorm2d bn{nullptr};
};
TORCH_MODULE(SpatialGate);

class CbamImpl : public torch::nn::Module {
 public:
  explicit CbamImpl(int64_t channels);
  torch::Tensor forward(const torch::Tensor& x) { return spatial->forward(channel->forward(x)); }
  // The authors' ResNet initialisation of the new layers: MLP biases 0, the spatial BatchNorm's
  // weight 0 (so each spatial gate starts at a uniform 0.5), its conv as the ResNet's convs.
  void initialise();
  ChannelGate channel{nullptr};
  SpatialGate spatial{nullptr};
};
TORCH_MODULE(Cbam);

// A block's attention, registered under the block as "se" or "cbam" (nothing for None).
class BlockAttention {
 public:
  BlockAttention() = default;
  BlockAttention(torch::nn::Module& block, AttentionKind kind, int64_t channels);
  torch::Tensor operator()(const torch::Tensor& x);

 private:
  SqueezeExcitationBlock se_{nullptr};
  Cbam cbam_{nullptr};
};

}  // namespace finetorch
