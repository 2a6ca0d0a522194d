#include "pruning.h"

#include <cmath>
#include <map>
#include <memory>
#include <regex>
#include <stdexcept>

namespace finetorch {

namespace nn = torch::nn;
using TensorDict = torch::OrderedDict<std::string, torch::Tensor>;

namespace {

// torch::nn::Module has no unregister_parameter/unregister_buffer, and PyTorch's reparametrization
// deletes `weight` from _parameters. An explicit instantiation may name private members: the
// standard idiom to reach Module::parameters_ (protected) and buffers_ (private).
template <typename Tag, typename Tag::type Member>
struct Expose {
  friend typename Tag::type member(Tag) { return Member; }
};
struct ParametersOf {
  using type = TensorDict nn::Module::*;
  friend type member(ParametersOf);
};
struct BuffersOf {
  using type = TensorDict nn::Module::*;
  friend type member(BuffersOf);
};
template struct Expose<ParametersOf, &nn::Module::parameters_>;
template struct Expose<BuffersOf, &nn::Module::buffers_>;

TensorDict& parametersOf(nn::Module& m) { return m.*member(ParametersOf{}); }
TensorDict& buffersOf(nn::Module& m) { return m.*member(BuffersOf{}); }

std::shared_ptr<nn::Module> findModule(nn::Module& net, const std::string& name) {
  for (auto& item : net.named_modules("", /*include_self=*/false)) {
    if (item.key() == name) return item.value();
  }
  throw std::invalid_argument("no module named '" + name + "' in this model");
}

// The member the layer's forward reads: what PyTorch's hook sets with setattr(module, 'weight', ...).
torch::Tensor& weightMember(nn::Module& m, const std::string& name) {
  if (auto* conv = m.as<nn::Conv2d>()) return conv->weight;
  if (auto* linear = m.as<nn::Linear>()) return linear->weight;
  throw std::invalid_argument("module '" + name + "' is a " + m.name() + "; only Conv2d and Linear weights are pruned");
}

bool isPruned(nn::Module& m) { return parametersOf(m).contains("weight_orig"); }

void applyMask(nn::Module& m, const std::string& name) {
  auto& orig = parametersOf(m)["weight_orig"];
  weightMember(m, name) = buffersOf(m)["weight_mask"].to(orig.dtype()) * orig;
}

// PyTorch's apply() for a layer not pruned yet: weight -> weight_orig (the same tensor, moved to
// the end of the parameters) plus a mask of ones at the end of the buffers.
void reparametrize(nn::Module& m, const std::string& name) {
  weightMember(m, name);  // refuses other module types before anything changes
  if (isPruned(m)) return;
  auto& params = parametersOf(m);
  if (!params.contains("weight")) throw std::invalid_argument("module '" + name + "' has no parameter 'weight'");
  torch::Tensor orig = params["weight"];
  params.erase("weight");
  params.insert("weight_orig", orig);
  m.register_buffer("weight_mask", torch::ones_like(orig, at::MemoryFormat::Contiguous));
}

// PyTorch's _compute_nparams_toprune (Python's round: half to even) and its validation.
int64_t toPrune(double amount, bool isCount, int64_t size) {
  int64_t count = isCount ? static_cast<int64_t>(amount) : static_cast<int64_t>(std::nearbyint(amount * size));
  if (isCount && count > size) {
    throw std::invalid_argument("amount=" + std::to_string(count) +
                                " should be smaller than the number of parameters to prune=" + std::to_string(size));
  }
  return count;
}

// L1Unstructured inside a PruningContainer: the amount applies to the entries still unpruned.
torch::Tensor l1Unstructured(const torch::Tensor& scores, const torch::Tensor& defaultMask, double amount, bool isCount) {
  auto mask = defaultMask.to(scores.dtype()).contiguous().clone();
  auto alive = defaultMask == 1;
  auto candidates = scores.masked_select(alive);
  int64_t count = toPrune(amount, isCount, candidates.numel());
  if (count == 0) return mask;
  auto partial = torch::ones_like(candidates);
  auto smallest = std::get<1>(torch::topk(candidates.abs(), count, /*dim=*/-1, /*largest=*/false));
  partial.index_fill_(0, smallest, 0);
  mask.index_put_({alive}, partial);
  return mask;
}

// LnStructured(n=2, dim=0) inside a PruningContainer: among the output channels with any entry
// unpruned, the amount of them with the smallest L2 norm go.
torch::Tensor l2Structured(const torch::Tensor& scores, const torch::Tensor& defaultMask, double amount, bool isCount) {
  if (scores.dim() <= 1) {
    throw std::invalid_argument("Structured pruning can only be applied to multidimensional tensors");
  }
  std::vector<int64_t> others;
  for (int64_t d = 1; d < scores.dim(); d++) others.push_back(d);
  auto mask = defaultMask.to(scores.dtype()).contiguous().clone();
  auto keep = defaultMask.sum(others) != 0;
  auto channels = scores.index({keep});
  auto channelMask = mask.index({keep});
  int64_t size = channels.size(0);
  int64_t count = toPrune(amount, isCount, size);
  if (count == 0) return mask;
  auto norm = torch::norm(channels, 2, others);
  auto largest = std::get<1>(torch::topk(norm, size - count, /*dim=*/-1, /*largest=*/true));
  auto partial = torch::zeros_like(channels).index_fill_(0, largest, 1) * channelMask;
  mask.index_put_({keep}, partial);
  return mask;
}

// The importance scores PyTorch reads: getattr(module, 'weight'), i.e. the masked weight once pruned.
torch::Tensor scoresOf(nn::Module& m, const std::string& name) {
  if (isPruned(m)) return (buffersOf(m)["weight_mask"] * parametersOf(m)["weight_orig"]).contiguous();
  return weightMember(m, name).detach().contiguous();
}

torch::Tensor maskOf(nn::Module& m, const std::string& name) {
  if (isPruned(m)) return buffersOf(m)["weight_mask"];
  return torch::ones_like(weightMember(m, name), at::MemoryFormat::Contiguous);
}

void setMask(nn::Module& m, const std::string& name, const torch::Tensor& mask) {
  reparametrize(m, name);
  auto& stored = buffersOf(m)["weight_mask"];
  stored.set_data(mask.to(stored.device(), stored.dtype()).contiguous());
  applyMask(m, name);
}

}  // namespace

void prune(nn::Module& net, const PruneOptions& options) {
  torch::NoGradGuard noGrad;
  std::vector<std::shared_ptr<nn::Module>> modules;
  for (auto& name : options.modules) {
    modules.push_back(findModule(net, name));
    weightMember(*modules.back(), name);  // every name checked before any layer changes
  }
  using Method = PruneOptions::Method;
  if (options.method == Method::GlobalL1Unstructured) {
    std::vector<torch::Tensor> scores, masks;
    for (size_t i = 0; i < modules.size(); i++) {
      scores.push_back(scoresOf(*modules[i], options.modules[i]).view(-1));
      masks.push_back(maskOf(*modules[i], options.modules[i]).view(-1));
    }
    auto mask = l1Unstructured(torch::cat(scores), torch::cat(masks), options.amount, options.isCount);
    int64_t offset = 0;
    for (size_t i = 0; i < modules.size(); i++) {
      int64_t n = scores[i].numel();
      // CustomFromMask keeps the old mask too (already contained in the global one)
      auto own = mask.slice(0, offset, offset + n).view_as(maskOf(*modules[i], options.modules[i]));
      setMask(*modules[i], options.modules[i], own * maskOf(*modules[i], options.modules[i]));
      offset += n;
    }
    return;
  }
  for (size_t i = 0; i < modules.size(); i++) {
    auto& m = *modules[i];
    const auto& name = options.modules[i];
    auto scores = scoresOf(m, name);
    auto mask = maskOf(m, name);
    if (options.method == Method::L1Unstructured) mask = l1Unstructured(scores, mask, options.amount, options.isCount);
    if (options.method == Method::L2Structured) mask = l2Structured(scores, mask, options.amount, options.isCount);
    setMask(m, name, mask.clone());
  }
}

void makePermanent(nn::Module& net, const std::vector<std::string>& names) {
  torch::NoGradGuard noGrad;
  std::vector<std::shared_ptr<nn::Module>> modules;
  for (auto& name : names) {
    modules.push_back(findModule(net, name));
    if (!isPruned(*modules.back())) {
      throw std::invalid_argument("Parameter 'weight' of module '" + name + "' has to be pruned before pruning can be removed");
    }
  }
  for (size_t i = 0; i < modules.size(); i++) {
    auto& m = *modules[i];
    auto& params = parametersOf(m);
    torch::Tensor orig = params["weight_orig"];
    orig.set_data(buffersOf(m)["weight_mask"].to(orig.dtype()) * orig);
    params.erase("weight_orig");
    buffersOf(m).erase("weight_mask");
    params.insert("weight", orig);
    weightMember(m, names[i]) = orig;
  }
}

void applyMasks(nn::Module& net) {
  for (auto& item : net.named_modules("", /*include_self=*/false)) {
    if (isPruned(*item.value())) applyMask(*item.value(), item.key());
  }
}

namespace {

// A ResNet block's narrowable conv: its BatchNorm and the conv that reads its output.
struct Narrowable {
  std::shared_ptr<nn::Module> conv, norm, next;
};

std::vector<std::pair<std::string, Narrowable>> narrowables(nn::Module& net) {
  static const std::regex block("layer\\d+\\.\\d+");
  std::vector<std::pair<std::string, Narrowable>> result;
  for (auto& item : net.named_modules("", /*include_self=*/false)) {
    if (!std::regex_match(item.key(), block)) continue;
    auto children = item.value()->named_children();
    auto child = [&](const char* name) { return children.contains(name) ? children[name] : nullptr; };
    if (!child("conv1") || !child("bn1") || !child("conv2")) continue;
    result.push_back({item.key() + ".conv1", {child("conv1"), child("bn1"), child("conv2")}});
    if (child("conv3") && child("bn2")) result.push_back({item.key() + ".conv2", {child("conv2"), child("bn2"), child("conv3")}});
  }
  return result;
}

// Keeps `index` along `dim` of every own parameter and buffer of `m` that has that many dims
// (scalars such as num_batches_tracked stay); gradients of the old shape go.
void narrow(nn::Module& m, int64_t dim, int64_t minDims, const torch::Tensor& index) {
  for (auto* dict : {&parametersOf(m), &buffersOf(m)}) {
    for (auto& item : *dict) {
      auto& t = item.value();
      if (!t.defined() || t.dim() < minDims || t.dim() <= dim) continue;
      auto kept = t.detach().index_select(dim, index.to(t.device())).contiguous(t.suggest_memory_format());
      t.set_data(kept);
      if (t.grad().defined()) t.mutable_grad() = torch::Tensor();
    }
  }
}

}  // namespace

std::vector<std::pair<std::string, int64_t>> shrinkableConvs(nn::Module& net) {
  std::vector<std::pair<std::string, int64_t>> result;
  for (auto& [name, n] : narrowables(net)) result.emplace_back(name, n.conv->as<nn::Conv2d>()->options.out_channels());
  return result;
}

void shrinkChannels(nn::Module& net, const std::vector<std::pair<std::string, int64_t>>& widths, bool byNorm) {
  torch::NoGradGuard noGrad;
  auto all = narrowables(net);
  std::map<std::string, Narrowable> byName(all.begin(), all.end());
  for (auto& [name, width] : widths) {
    auto found = byName.find(name);
    if (found == byName.end()) {
      throw std::invalid_argument("'" + name + "' is not a conv whose output channels can be removed (a ResNet block's conv1, or a Bottleneck's conv2)");
    }
    int64_t channels = found->second.conv->as<nn::Conv2d>()->options.out_channels();
    if (width < 1 || width > channels) {
      throw std::invalid_argument("width " + std::to_string(width) + " for '" + name + "' is outside 1.." + std::to_string(channels));
    }
  }
  // every conv's channels are chosen before any is narrowed: a Bottleneck's conv2 is ranked on its
  // whole weight, as prune.ln_structured on each layer of the unshrunk network would rank it
  std::vector<torch::Tensor> indices;
  for (auto& [name, width] : widths) {
    auto& n = byName[name];
    if (!byNorm) {
      indices.push_back(torch::arange(width, torch::kLong));
      continue;
    }
    std::vector<int64_t> others{1, 2, 3};
    auto norms = torch::norm(scoresOf(*n.conv, name), 2, others);
    auto largest = std::get<1>(torch::topk(norms, width, -1, /*largest=*/true));
    indices.push_back(std::get<0>(largest.sort()));
  }
  for (size_t i = 0; i < widths.size(); i++) {
    const auto& [name, width] = widths[i];
    auto& n = byName[name];
    auto* conv = n.conv->as<nn::Conv2d>();
    auto* next = n.next->as<nn::Conv2d>();
    if (width == conv->options.out_channels()) continue;
    const auto& index = indices[i];
    narrow(*n.conv, 0, 1, index);
    narrow(*n.norm, 0, 1, index);
    narrow(*n.next, 1, 4, index);
    conv->options.out_channels(width);
    n.norm->as<nn::BatchNorm2d>()->options.num_features(width);
    next->options.in_channels(width);
    if (isPruned(*n.conv)) applyMask(*n.conv, name);
    if (isPruned(*n.next)) applyMask(*n.next, name);
  }
}

}  // namespace finetorch
