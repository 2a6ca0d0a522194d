#include "attention.h"

namespace finetorch {

namespace nn = torch::nn;

namespace {
// [N, C, H, W] -> [N, C] by global average (or max) pooling.
torch::Tensor pooled(const torch::Tensor& x, bool max) {
  return torch::flatten(max ? std::get<0>(torch::adaptive_max_pool2d(x, {1, 1})) : torch::adaptive_avg_pool2d(x, {1, 1}), 1);
}
torch::Tensor perChannel(const torch::Tensor& scale) { return scale.unsqueeze(-1).unsqueeze(-1); }
}  // namespace

SqueezeExcitationBlockImpl::SqueezeExcitationBlockImpl(int64_t channels) {
  fc1 = register_module("fc1", nn::Linear(channels, channels / kAttentionReduction));
  fc2 = register_module("fc2", nn::Linear(channels / kAttentionReduction, channels));
}

torch::Tensor SqueezeExcitationBlockImpl::forward(const torch::Tensor& x) {
  auto scale = torch::sigmoid(fc2->forward(torch::relu(fc1->forward(pooled(x, false)))));
  return x * perChannel(scale);
}

ChannelGateImpl::ChannelGateImpl(int64_t channels) {
  fc1 = register_module("fc1", nn::Linear(channels, channels / kAttentionReduction));
  fc2 = register_module("fc2", nn::Linear(channels / kAttentionReduction, channels));
}

torch::Tensor ChannelGateImpl::forward(const torch::Tensor& x) {
  auto mlp = [&](const torch::Tensor& v) { return fc2->forward(torch::relu(fc1->forward(v))); };
  auto scale = torch::sigmoid(mlp(pooled(x, false)) + mlp(pooled(x, true)));
  return x * perChannel(scale);
}

SpatialGateImpl::SpatialGateImpl() {
  conv = register_module("conv", nn::Conv2d(nn::Conv2dOptions(2, 1, 7).padding(3).bias(false)));
  bn = register_module("bn", nn::BatchNorm2d(nn::BatchNormOptions(1).eps(1e-5).momentum(0.01)));
}

torch::Tensor SpatialGateImpl::forward(const torch::Tensor& x) {
  // the authors' ChannelPool: max first, then mean
  auto pooledChannels = torch::cat({std::get<0>(x.max(1, /*keepdim=*/true)), x.mean(1, /*keepdim=*/true)}, 1);
  return x * torch::sigmoid(bn->forward(conv->forward(pooledChannels)));
}

CbamImpl::CbamImpl(int64_t channels) {
  channel = register_module("channel", ChannelGate(channels));
  spatial = register_module("spatial", SpatialGate());
}

void CbamImpl::initialise() {
  torch::NoGradGuard noGrad;
  channel->fc1->bias.zero_();
  channel->fc2->bias.zero_();
  spatial->bn->weight.zero_();
  spatial->bn->bias.zero_();
}

BlockAttention::BlockAttention(nn::Module& block, AttentionKind kind, int64_t channels) {
  if (kind == AttentionKind::SqueezeExcitation) se_ = block.register_module("se", SqueezeExcitationBlock(channels));
  if (kind == AttentionKind::Cbam) cbam_ = block.register_module("cbam", Cbam(channels));
}

torch::Tensor BlockAttention::operator()(const torch::Tensor& x) {
  if (se_) return se_->forward(x);
  if (cbam_) return cbam_->forward(x);
  return x;
}

}  // namespace finetorch
