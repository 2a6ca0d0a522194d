#include "ops/winograd_conv.h"

#include <torch/version.h>

#include "ops/autocast.h"

#ifdef FINETORCH_WINOGRAD
#include <oneapi/dnnl/dnnl.hpp>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>
#endif

namespace finetorch {

namespace {

// torch::nn's option variants are c10::variant in libtorch 1.x, std::variant in 2.x
#if TORCH_VERSION_MAJOR >= 2
using std::get_if;
using std::holds_alternative;
#else
using c10::get_if;
using c10::holds_alternative;
#endif

bool isPair(const torch::ExpandingArray<2>& a, int64_t value) { return (*a)[0] == value && (*a)[1] == value; }

// Where Winograd pays on its own and with the reorders to and from oneDNN's blocked layout
// (measured forward + both backwards, 2 cores, AVX-512): from 8x8 maps of 64 channels at batch 32
// (x1.25), not on 7x7 of 64-128 channels (x0.73-0.98), never on 2x2; its gain grows with the map
// and the channels (56x56x64: x1.4-1.5; 28x28x256: x2.5). 4x4 maps pay only with 512 channels
// and batch 32 (x1.43; batch 16: x0.95). So: maps of at least 7x7 with batch x height x width x
// channels of at least 2^17, or 4x4 and up with 512 channels and batch x height x width >= 512.
bool worthIt(const torch::Tensor& x) {
  const int64_t n = x.size(0), channels = x.size(1), h = x.size(2), w = x.size(3);
  if (h >= 7 && w >= 7 && n * channels * h * w >= (int64_t{1} << 17)) return true;
  return h >= 4 && w >= 4 && channels >= 512 && n * h * w >= 512;
}

[[maybe_unused]] bool qualifies(const torch::nn::Conv2dImpl& conv, const torch::Tensor& x) {
  const auto& o = conv.options;
  const auto* padding = get_if<torch::ExpandingArray<2>>(&o.padding());
  const auto& w = conv.weight;
  return x.is_cpu() && x.dim() == 4 && x.scalar_type() == torch::kFloat32 && w.scalar_type() == torch::kFloat32 &&
         !conv.bias.defined() && isPair(o.kernel_size(), 3) && isPair(o.stride(), 1) && isPair(o.dilation(), 1) &&
         padding != nullptr && isPair(*padding, 1) && o.groups() == 1 && holds_alternative<torch::enumtype::kZeros>(o.padding_mode()) &&
         o.in_channels() % 16 == 0 && o.out_channels() % 16 == 0 && torch::GradMode::is_enabled() &&
         (x.requires_grad() || w.requires_grad()) && !cpuAutocastEnabled() && worthIt(x);
}

}  // namespace

#ifdef FINETORCH_WINOGRAD

namespace {

using dnnl::memory;
using Dims = memory::dims;
namespace autograd = torch::autograd;

// A torch tensor as oneDNN sees it: its sizes and strides (NCHW, channels-last, any dense layout).
memory::desc describe(const torch::Tensor& t) {
  return memory::desc(Dims(t.sizes().begin(), t.sizes().end()), memory::data_type::f32,
                      Dims(t.strides().begin(), t.strides().end()));
}

// A tensor in one of oneDNN's blocked layouts. The bytes live in a torch tensor, so they come from
// (and go back to) finetorch's CPU block cache like every other activation.
struct Blocked {
  torch::Tensor storage;
  memory mem;
};

Blocked allocate(const memory::desc& layout, const dnnl::engine& engine) {
  auto storage = torch::empty({static_cast<int64_t>((layout.get_size() + 3) / 4)}, torch::kFloat32);
  return {storage, memory(layout, engine, storage.data_ptr())};
}

// `t` in `layout`: the tensor itself where it already is (no copy), else a reordered copy.
Blocked toBlocked(const torch::Tensor& t, const memory::desc& layout, const dnnl::engine& engine, dnnl::stream& stream) {
  auto dense = t.is_non_overlapping_and_dense() ? t : t.contiguous(at::MemoryFormat::ChannelsLast);
  memory plain(describe(dense), engine, dense.data_ptr());
  if (plain.get_desc() == layout) return {dense, plain};
  auto out = allocate(layout, engine);
  dnnl::reorder(plain, out.mem).execute(stream, plain, out.mem);
  return out;
}

void fromBlocked(memory blocked, const torch::Tensor& dst, const dnnl::engine& engine, dnnl::stream& stream) {
  memory plain(describe(dst), engine, dst.data_ptr());
  dnnl::reorder(blocked, plain).execute(stream, blocked, plain);
}

// Descriptors are rebuilt per call: 0.02 ms for the three, and oneDNN caches the JIT kernels.
struct Primitives {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::convolution_forward::primitive_desc forward;
  dnnl::convolution_backward_data::primitive_desc backwardData;
  dnnl::convolution_backward_weights::primitive_desc backwardWeights;
};

// Throws dnnl::error where this CPU has no Winograd kernel for the shape.
Primitives primitivesFor(int64_t batch, int64_t in, int64_t out, int64_t height, int64_t width) {
  using Tag = memory::format_tag;
  using dnnl::algorithm;
  Primitives p;
  auto src = memory::desc({batch, in, height, width}, memory::data_type::f32, Tag::any);
  auto weights = memory::desc({out, in, 3, 3}, memory::data_type::f32, Tag::any);
  auto dst = memory::desc({batch, out, height, width}, memory::data_type::f32, Tag::any);
  Dims stride{1, 1}, pad{1, 1};
  // Winograd's tile buffers are tens of MB: oneDNN would malloc (mmap) and fault them in on every
  // call; handed in by the caller they come from the block cache instead.
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  p.forward = dnnl::convolution_forward::primitive_desc(
      dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, algorithm::convolution_winograd, src, weights, dst,
                                      stride, pad, pad),
      attr, p.engine);
  p.backwardData = dnnl::convolution_backward_data::primitive_desc(
      dnnl::convolution_backward_data::desc(algorithm::convolution_winograd, src, weights, dst, stride, pad, pad), attr,
      p.engine, p.forward);
  p.backwardWeights = dnnl::convolution_backward_weights::primitive_desc(
      dnnl::convolution_backward_weights::desc(algorithm::convolution_winograd, src, weights, dst, stride, pad, pad),
      attr, p.engine, p.forward);
  return p;
}

torch::Tensor emptyLike(const torch::Tensor& like, at::IntArrayRef sizes) {
  return torch::empty(sizes, like.options().requires_grad(false).memory_format(like.suggest_memory_format()));
}

struct WinogradConvolutionBackward : autograd::Node {
  Primitives primitives;
  Blocked source;  // the forward's input, already in the layout backward-weights reads
  autograd::SavedVariable weight;
  std::vector<int64_t> inputSizes;
  torch::TensorOptions inputOptions;
  at::MemoryFormat inputFormat = at::MemoryFormat::Contiguous;

  std::string name() const override { return "WinogradConvolutionBackward"; }

  autograd::variable_list apply(autograd::variable_list&& grads) override {
    const auto& grad = grads[0];
    autograd::variable_list result(2);
    if (!grad.defined()) return result;
    auto w = weight.unpack();
    at::NoGradGuard noGrad;
    dnnl::stream stream(primitives.engine);
    auto& e = primitives.engine;
    auto diffDst = toBlocked(grad, primitives.backwardData.diff_dst_desc(), e, stream);
    if (should_compute_output(0)) {
      auto weights = toBlocked(w, primitives.backwardData.weights_desc(), e, stream);
      auto diffSrc = allocate(primitives.backwardData.diff_src_desc(), e);
      auto scratch = allocate(primitives.backwardData.scratchpad_desc(), e);
      dnnl::convolution_backward_data(primitives.backwardData)
          .execute(stream, {{DNNL_ARG_DIFF_DST, diffDst.mem}, {DNNL_ARG_WEIGHTS, weights.mem}, {DNNL_ARG_DIFF_SRC, diffSrc.mem},
                            {DNNL_ARG_SCRATCHPAD, scratch.mem}});
      result[0] = torch::empty(inputSizes, inputOptions.memory_format(inputFormat));
      fromBlocked(diffSrc.mem, result[0], e, stream);
    }
    if (should_compute_output(1)) {
      auto diffDstW = primitives.backwardWeights.diff_dst_desc() == diffDst.mem.get_desc()
                          ? diffDst
                          : toBlocked(grad, primitives.backwardWeights.diff_dst_desc(), e, stream);
      // oneDNN hints backward-weights with the forward's descriptor, so the saved input fits it as is
      TORCH_CHECK(primitives.backwardWeights.src_desc() == source.mem.get_desc(),
                  "Winograd backward-weights wants another input layout than the forward's");
      const auto& src = source;
      auto diffWeights = allocate(primitives.backwardWeights.diff_weights_desc(), e);
      auto scratch = allocate(primitives.backwardWeights.scratchpad_desc(), e);
      dnnl::convolution_backward_weights(primitives.backwardWeights)
          .execute(stream, {{DNNL_ARG_SRC, src.mem}, {DNNL_ARG_DIFF_DST, diffDstW.mem}, {DNNL_ARG_DIFF_WEIGHTS, diffWeights.mem},
                            {DNNL_ARG_SCRATCHPAD, scratch.mem}});
      result[1] = emptyLike(w, w.sizes());
      fromBlocked(diffWeights.mem, result[1], e, stream);
    }
    stream.wait();
    return result;
  }

  void release_variables() override {
    weight.reset_data();
    source = Blocked{};
  }
};

// Graph nodes are std::shared_ptr in libtorch 1.x and 2.x up to ~2.12, c10::intrusive_ptr after.
template <typename T>
auto makeNode() {
  using Pointer = decltype(autograd::Edge{}.function);
  if constexpr (std::is_same_v<Pointer, std::shared_ptr<autograd::Node>>) {
    return std::make_shared<T>();
  } else {
    return c10::make_intrusive<T>();
  }
}

torch::Tensor winogradConvolve(const torch::Tensor& x, const torch::Tensor& w, Primitives primitives) {
  auto& e = primitives.engine;
  dnnl::stream stream(e);
  Blocked src, dst;
  {
    at::NoGradGuard noGrad;
    src = toBlocked(x, primitives.forward.src_desc(), e, stream);
    auto weights = toBlocked(w, primitives.forward.weights_desc(), e, stream);
    dst = allocate(primitives.forward.dst_desc(), e);
    auto scratch = allocate(primitives.forward.scratchpad_desc(), e);
    dnnl::convolution_forward(primitives.forward)
        .execute(stream, {{DNNL_ARG_SRC, src.mem}, {DNNL_ARG_WEIGHTS, weights.mem}, {DNNL_ARG_DST, dst.mem},
                          {DNNL_ARG_SCRATCHPAD, scratch.mem}});
  }
  auto out = emptyLike(x, {x.size(0), w.size(0), x.size(2), x.size(3)});
  fromBlocked(dst.mem, out, e, stream);
  stream.wait();
  if (autograd::compute_requires_grad(x, w)) {
    auto node = makeNode<WinogradConvolutionBackward>();
    node->set_next_edges(autograd::collect_next_edges(x, w));
    if (node->should_compute_output(1)) node->source = src;  // the input is only read again for the weights' gradient
    node->primitives = std::move(primitives);
    node->weight = autograd::SavedVariable(w, false);
    node->inputSizes = x.sizes().vec();
    node->inputOptions = x.options().requires_grad(false);
    node->inputFormat = x.suggest_memory_format();
    autograd::set_history(out, node);
  }
  return out;
}

}  // namespace

WinogradSupport winogradSupport() {
  try {
    primitivesFor(2, 16, 16, 8, 8);
    return {true, ""};
  } catch (const dnnl::error& e) {
    return {false, std::string("oneDNN has no f32 Winograd convolution for this CPU (it needs AVX-512): ") + e.what()};
  }
}

torch::Tensor convolve(torch::nn::Conv2dImpl& conv, const torch::Tensor& x, const ConvolutionChoice* choice) {
  if (choice == nullptr || !choice->winograd || !qualifies(conv, x)) return conv.forward(x);
  Primitives primitives;
  try {
    primitives = primitivesFor(x.size(0), x.size(1), conv.weight.size(0), x.size(2), x.size(3));
  } catch (const dnnl::error&) {
    return conv.forward(x);  // no kernel for this shape on this CPU: the direct convolution
  }
  return winogradConvolve(x, conv.weight, std::move(primitives));
}

#else

WinogradSupport winogradSupport() {
  return {false,
          "this build of finetorch has no oneDNN Winograd: it needs a libtorch linked against a shared oneDNN 2.x "
          "(Debian's libtorch-dev) and oneDNN's headers (apt-get install libdnnl-dev) when the addon is built"};
}

torch::Tensor convolve(torch::nn::Conv2dImpl& conv, const torch::Tensor& x, const ConvolutionChoice* choice) {
  (void)choice;
  return conv.forward(x);
}

#endif

}  // namespace finetorch
