#include "quantized/quantize_images.h"

#include <cmath>
#include <cstdint>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

namespace finetorch::quantized {

namespace {

// PyTorch's quantize_val: q = clamp(int64(zero_point + nearbyint(x * (1.0f / scale))), 0, 255),
// in float as it computes. The 1.5 * 2^23 addition rounds to the nearest integer, ties to even
// (the FPU's mode, as nearbyint) for |y| < 2^22, and vectorizes where nearbyint is a libm call;
// larger |y| are integers already. A sum outside int64 (NaN, +-inf, >= 2^63) converts to INT64_MIN
// on x86 and so clamps to 0 there: kept.
inline uint8_t quantizeOne(float x, float invScale, float zeroPoint) {
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23
  float y = x * invScale;
  float rounded = std::fabs(y) < 4194304.0f ? (y + kRound) - kRound : y;
  float q = zeroPoint + rounded;
  q = (q >= 0.0f && q < 9.223372036854775808e18f) ? q : 0.0f;
  q = q > 255.0f ? 255.0f : q;
  return static_cast<uint8_t>(static_cast<int32_t>(q));
}

}  // namespace

torch::Tensor quantizeImages(const torch::Tensor& images, const QParams& qparams) {
  TORCH_CHECK(images.dim() == 4 && images.scalar_type() == torch::kFloat, "quantizeImages expects float32 [N, C, H, W]");
  auto source = images.contiguous(at::MemoryFormat::ChannelsLast);
  auto out = at::_empty_affine_quantized(source.sizes(), source.options().dtype(at::kQUInt8), qparams.scale,
                                         qparams.zeroPoint, at::MemoryFormat::ChannelsLast);
  const float* in = source.data_ptr<float>();
  auto* codes = reinterpret_cast<uint8_t*>(out.data_ptr<c10::quint8>());
  // as quantize_val: the reciprocal of the float32 scale, in float32
  const float invScale = 1.0f / static_cast<float>(qparams.scale);
  const float zeroPoint = static_cast<float>(qparams.zeroPoint);
  at::parallel_for(0, source.numel(), 1 << 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; i++) codes[i] = quantizeOne(in[i], invScale, zeroPoint);
  });
  return out;
}

}  // namespace finetorch::quantized
