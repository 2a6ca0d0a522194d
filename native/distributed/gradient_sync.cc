// The two ways gradients are averaged: DDP's own c10d::Reducer (buckets all-reduced while backward
// still runs), or, where the Reducer's C++ constructor is not one this file knows, flat buckets
// all-reduced after backward.
#ifdef FINETORCH_C10D

#include "gradient_sync_impl.h"

#include <algorithm>
#include <unordered_map>

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/reducer.hpp>

namespace finetorch {

namespace {

// PyTorch's DDP defaults: a small first bucket so communication starts early in backward.
constexpr int64_t kFirstBucketBytes = 1024 * 1024;

#if FINETORCH_HAS_REDUCER
// A 1x1 convolution's weight is contiguous in both layouts at once, and libtorch leaves its strides
// as they were ([C, 1, 1, 1]) where backward on the CPU (channels-last activations, net.h) makes
// its gradient with channels-last's ([C, 1, C, C]). The Reducer lays its bucket views out like
// the parameter and warns on a mismatch, so such weights take the strides their gradients will
// have: the same values, in place (the optimizer keeps the same tensor).
void canonicalStrides(torch::Tensor& param) {
  if (!param.is_cpu() || param.dim() != 4 || !param.is_contiguous() || !param.is_contiguous(at::MemoryFormat::ChannelsLast)) return;
  auto wanted = torch::empty(param.sizes(), param.options().memory_format(at::MemoryFormat::ChannelsLast));
  if (wanted.strides() == param.strides()) return;
  torch::NoGradGuard noGrad;
  wanted.copy_(param);
  param.set_(wanted);
}

class ReducerSync : public GradientSync {
 public:
  ReducerSync(std::shared_ptr<Group> group, std::vector<std::pair<std::string, torch::Tensor>> params, int64_t bucketBytes)
      : group_(std::move(group)) {
    std::vector<torch::Tensor> tensors;
    std::unordered_map<size_t, std::string> names;
    for (size_t i = 0; i < params.size(); i++) {
      canonicalStrides(params[i].second);
      tensors.push_back(params[i].second);
      names[i] = params[i].first;
    }
    std::vector<bool> sparse(tensors.size(), false);
    // as DistributedDataParallel._ddp_init_helper: assigned in parameter order, reduced in reverse
    // (the order backward produces them)
    auto assignment = c10d::compute_bucket_assignment_by_size(tensors, {static_cast<size_t>(kFirstBucketBytes), static_cast<size_t>(bucketBytes)}, sparse);
    auto buckets = std::get<0>(assignment);
    std::reverse(buckets.begin(), buckets.end());
#if TORCH_VERSION_MAJOR < 2
    auto limits = std::get<1>(assignment);
    std::reverse(limits.begin(), limits.end());
    reducer_ = std::make_shared<c10d::Reducer>(tensors, buckets, limits, group_->backend(), sparse, bucketBytes,
                                               /*find_unused_parameters=*/false, /*gradient_as_bucket_view=*/false, names, kFirstBucketBytes);
#else
    auto front = c10::make_intrusive<c10d::ProcessGroup>(group_->store(), group_->rank(), group_->size());
    auto type = group_->options().backend == "nccl" ? c10d::ProcessGroup::BackendType::NCCL : c10d::ProcessGroup::BackendType::GLOO;
    auto device = tensors.empty() || tensors[0].is_cpu() ? c10::DeviceType::CPU : c10::DeviceType::CUDA;
    front->setBackend(device, type, group_->backend());
    front->setDefaultBackend(type);
    reducer_ = std::make_shared<c10d::Reducer>(tensors, buckets, front, sparse, bucketBytes, /*find_unused_parameters=*/false,
                                               /*gradient_as_bucket_view=*/false, names, kFirstBucketBytes,
                                               /*skip_all_reduce_unused_params=*/false, /*use_python_reducer=*/false, std::vector<int64_t>{});
#endif
  }
  void beforeForward() override {
    reducer_->rebuild_buckets();
    reducer_->prepare_for_forward();
  }
  void beforeBackward() override { reducer_->prepare_for_backward({}); }
  std::string mode() const override { return "reducer"; }

 private:
  std::shared_ptr<Group> group_;
  std::shared_ptr<c10d::Reducer> reducer_;
};
#endif

class FlatBucketSync : public GradientSync {
 public:
  FlatBucketSync(std::shared_ptr<Group> group, const std::vector<std::pair<std::string, torch::Tensor>>& params, int64_t bucketBytes)
      : group_(std::move(group)), bucketBytes_(bucketBytes) {
    for (const auto& item : params) params_.push_back(item.second);
  }
  void afterBackward() override {
    torch::NoGradGuard noGrad;
    // backward's order (last layers first), in buckets of one dtype and device
    std::vector<torch::Tensor> bucket;
    int64_t bytes = 0;
    auto flush = [&] {
      if (bucket.empty()) return;
      auto flat = torch::utils::flatten_dense_tensors(bucket);
      group_->allReduce(flat);
      flat.div_(group_->size());
      auto parts = torch::utils::unflatten_dense_tensors(flat, bucket);
      for (size_t i = 0; i < bucket.size(); i++) bucket[i].copy_(parts[i]);
      bucket.clear();
      bytes = 0;
    };
    for (auto it = params_.rbegin(); it != params_.rend(); ++it) {
      auto& grad = it->mutable_grad();
      // every rank must send the same buckets: a parameter without a gradient sends zeros
      if (!grad.defined()) grad = torch::zeros_like(*it);
      if (!bucket.empty() && (grad.scalar_type() != bucket[0].scalar_type() || grad.device() != bucket[0].device())) flush();
      bucket.push_back(grad);
      bytes += grad.numel() * grad.element_size();
      if (bytes >= bucketBytes_) flush();
    }
    flush();
  }
  std::string mode() const override { return "flat-buckets"; }

 private:
  std::shared_ptr<Group> group_;
  std::vector<torch::Tensor> params_;
  int64_t bucketBytes_;
};

}  // namespace

std::shared_ptr<GradientSync> createGradientSync(std::shared_ptr<Group> group, const std::vector<std::pair<std::string, torch::Tensor>>& params,
                                                 int64_t bucketBytes, bool flatBuckets) {
#if FINETORCH_HAS_REDUCER
  if (!flatBuckets) return std::make_shared<ReducerSync>(std::move(group), params, bucketBytes);
#endif
  return std::make_shared<FlatBucketSync>(std::move(group), params, bucketBytes);
}

}  // namespace finetorch

#endif  // FINETORCH_C10D
