// torch.nn.utils.prune on finetorch's networks: a pruned layer's `weight` parameter becomes the
// parameter `weight_orig` plus the buffer `weight_mask`, and every forward uses
// weight = weight_orig * weight_mask (PyTorch's forward pre-hook), so the state_dict keys and the
// gradients (masked, on weight_orig) are PyTorch's.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <torch/nn.h>

namespace finetorch {

// What the JS side asked for, validated there. amount is a fraction of the still-unpruned entries
// (channels for Ln structured) unless isCount, then a number of them (PyTorch's int amount).
struct PruneOptions {
  enum class Method { L1Unstructured, GlobalL1Unstructured, L2Structured, Identity } method = Method::Identity;
  std::vector<std::string> modules;  // Conv2d/Linear names (state_dict prefixes)
  double amount = 0;
  bool isCount = false;
};

void prune(torch::nn::Module& net, const PruneOptions& options);
// prune.remove: folds the masks of these modules into `weight` for good.
void makePermanent(torch::nn::Module& net, const std::vector<std::string>& modules);
// PyTorch's forward pre-hook for every pruned module; cheap when nothing is pruned. Call before
// each forward, under the grad mode of that forward.
void applyMasks(torch::nn::Module& net);

// Shrinks a ResNet's blocks (BasicBlock conv1; Bottleneck conv1 and conv2): keeps `widths[i]`
// output channels of the named conv, with its BatchNorm's entries and the next conv's input
// channels. byNorm: the channels of largest L2 norm (LnStructured's choice), else the first ones
// (to give a fresh model a checkpoint's shapes before loading it).
void shrinkChannels(torch::nn::Module& net, const std::vector<std::pair<std::string, int64_t>>& widths, bool byNorm);
// The convs shrinkChannels can narrow, with their current output widths.
std::vector<std::pair<std::string, int64_t>> shrinkableConvs(torch::nn::Module& net);

}  // namespace finetorch
