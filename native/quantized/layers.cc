#include "quantized/layers.h"

#include <stdexcept>

#include <ATen/ATen.h>

#include "quantized/ops.h"
#include "quantized/qparams.h"

namespace finetorch::quantized {

namespace {

torch::Tensor scaleTensor(double scale) { return at::scalar_tensor(scale, at::kDouble); }
torch::Tensor zeroPointTensor(int64_t zeroPoint) { return at::scalar_tensor(zeroPoint, at::kLong); }

void exportWeight(const std::string& prefix, const torch::Tensor& qweight, NamedTensors& out) {
  out[prefix + "weight"] = qweight.int_repr();
  out[prefix + "weight_scale"] = qweight.q_per_channel_scales();
}

torch::Tensor importWeight(const std::string& prefix, const NamedTensors& in, const std::vector<int64_t>& shape) {
  auto values = stateEntry(in, prefix + "weight");
  auto scales = stateEntry(in, prefix + "weight_scale");
  if (values.scalar_type() != at::kChar || values.sizes() != c10::IntArrayRef(shape)) {
    throw std::invalid_argument(prefix + "weight: expected int8 " + c10::str(c10::IntArrayRef(shape)) + " but found " +
                                std::string(c10::toString(values.scalar_type())) + " " + c10::str(values.sizes()));
  }
  if (scales.scalar_type() != at::kDouble || scales.dim() != 1 || scales.size(0) != shape[0]) {
    throw std::invalid_argument(prefix + "weight_scale: expected float64 [" + std::to_string(shape[0]) + "]");
  }
  auto zeroPoints = at::zeros({shape[0]}, at::kLong);
  auto q = at::_make_per_channel_quantized_tensor(values.contiguous(), scales.contiguous(), zeroPoints, 0);
  return q;
}

torch::Tensor importBias(const std::string& prefix, const NamedTensors& in, int64_t size) {
  auto bias = stateEntry(in, prefix + "bias");
  if (bias.scalar_type() != at::kFloat || bias.dim() != 1 || bias.size(0) != size) {
    throw std::invalid_argument(prefix + "bias: expected float32 [" + std::to_string(size) + "]");
  }
  return bias.contiguous();
}

}  // namespace

const torch::Tensor& stateEntry(const NamedTensors& state, const std::string& name) {
  auto found = state.find(name);
  if (found == state.end()) throw std::invalid_argument("quantized state lacks '" + name + "'");
  return found->second;
}

void ActivationPoint::finalize() {
  qparams_ = observer_->qparams();
  observer_.reset();
}

void ActivationPoint::exportState(const std::string& prefix, NamedTensors& out) const {
  out[prefix + "scale"] = scaleTensor(qparams_.scale);
  out[prefix + "zero_point"] = zeroPointTensor(qparams_.zeroPoint);
}

void ActivationPoint::importState(const std::string& prefix, const NamedTensors& in) {
  auto scale = stateEntry(in, prefix + "scale");
  auto zeroPoint = stateEntry(in, prefix + "zero_point");
  if (scale.numel() != 1 || zeroPoint.numel() != 1) throw std::invalid_argument(prefix + "scale/zero_point: expected one value each");
  double s = scale.item<double>();
  int64_t z = zeroPoint.item<int64_t>();
  if (!(s > 0) || z < 0 || z > 255) throw std::invalid_argument(prefix + "scale/zero_point: expected scale > 0 and zero point in [0, 255]");
  qparams_ = {s, z};
  observer_.reset();
}

QuantizedConv::QuantizedConv(FusedWeights weights, int64_t stride, int64_t padding, bool relu, std::unique_ptr<Observer> observer)
    : weights_(std::move(weights)),
      weightShape_(weights_.weight.sizes().vec()),
      stride_(stride),
      padding_(padding),
      relu_(relu),
      output_(std::move(observer)) {}

torch::Tensor QuantizedConv::calibrate(const torch::Tensor& x) {
  auto y = at::conv2d(x, weights_.weight, weights_.bias, {stride_, stride_}, {padding_, padding_});
  if (relu_) y = at::relu(y);
  output_.observe(y);
  return y;
}

void QuantizedConv::finalize() {
  output_.finalize();
  qweight_ = quantizeWeightPerChannel(weights_.weight);
  bias_ = weights_.bias;
  weights_ = {};
  pack();
}

void QuantizedConv::pack() {
  packed_ = ops::conv2dPrepack(qweight_, bias_, {stride_, stride_}, {padding_, padding_}, {1, 1}, 1);
}

torch::Tensor QuantizedConv::forward(const torch::Tensor& qx) const {
  const auto& q = output_.qparams();
  return relu_ ? ops::conv2dRelu(qx, packed_, q.scale, q.zeroPoint) : ops::conv2d(qx, packed_, q.scale, q.zeroPoint);
}

void QuantizedConv::exportState(const std::string& prefix, NamedTensors& out) const {
  exportWeight(prefix, qweight_, out);
  out[prefix + "bias"] = bias_;
  output_.exportState(prefix, out);
}

void QuantizedConv::importState(const std::string& prefix, const NamedTensors& in) {
  qweight_ = importWeight(prefix, in, weightShape_);
  bias_ = importBias(prefix, in, weightShape_[0]);
  weights_ = {};
  output_.importState(prefix, in);
  pack();
}

QuantizedLinear::QuantizedLinear(torch::Tensor weight, torch::Tensor bias, bool relu, std::unique_ptr<Observer> observer)
    : weight_(weight.detach().contiguous()),
      bias_(bias.detach().contiguous()),
      weightShape_(weight.sizes().vec()),
      relu_(relu),
      output_(std::move(observer)) {}

torch::Tensor QuantizedLinear::calibrate(const torch::Tensor& x) {
  auto y = at::linear(x, weight_, bias_);
  if (relu_) y = at::relu(y);
  output_.observe(y);
  return y;
}

void QuantizedLinear::finalize() {
  output_.finalize();
  qweight_ = quantizeWeightPerChannel(weight_);
  weight_ = torch::Tensor();
  pack();
}

void QuantizedLinear::pack() { packed_ = ops::linearPrepack(qweight_, bias_); }

torch::Tensor QuantizedLinear::forward(const torch::Tensor& qx) const {
  const auto& q = output_.qparams();
  return relu_ ? ops::linearRelu(qx, packed_, q.scale, q.zeroPoint) : ops::linear(qx, packed_, q.scale, q.zeroPoint);
}

void QuantizedLinear::exportState(const std::string& prefix, NamedTensors& out) const {
  exportWeight(prefix, qweight_, out);
  out[prefix + "bias"] = bias_;
  output_.exportState(prefix, out);
}

void QuantizedLinear::importState(const std::string& prefix, const NamedTensors& in) {
  qweight_ = importWeight(prefix, in, weightShape_);
  bias_ = importBias(prefix, in, weightShape_[0]);
  weight_ = torch::Tensor();
  output_.importState(prefix, in);
  pack();
}

}  // namespace finetorch::quantized
