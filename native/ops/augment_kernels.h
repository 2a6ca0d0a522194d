// Per-image augmentation kernels on HWC uint8 RGB, in plain C++ so they run on any thread without
// touching libtorch's thread pool: crop + PIL-style antialiased bilinear resize, horizontal flip,
// torchvision's ColorJitter (brightness, contrast, saturation, hue in a given order), and
// normalisation into float32 — each as torchvision computes it on PIL images, to the bit.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

namespace finetorch::augment {

struct ImageView {
  const uint8_t* data;  // height x width x 3
  int width;
  int height;
};

struct Params {
  int cropX = 0, cropY = 0, cropWidth = 0, cropHeight = 0;  // region of the source
  bool flip = false;
  double brightness = 1, contrast = 1, saturation = 1, hue = 0;
  std::array<int, 4> order = {0, 1, 2, 3};  // 0 brightness, 1 contrast, 2 saturation, 3 hue
};

struct Output {
  int width, height;
  std::array<float, 3> mean, std;
};

// PIL's resampling coefficients for one axis (Resample.c, triangle filter): the support widens
// with the reduction factor, which is what antialiasing means there. Weights are PIL's 8-bit
// fixed point (22 fraction bits), so the result is PIL's to the last bit, and integer-fast.
constexpr int kPrecisionBits = 32 - 8 - 2;

struct Taps {
  std::vector<int> start, count;
  std::vector<int32_t> weights;  // count[i] weights per output, packed at `stride`
  int stride = 0;
};

inline Taps bilinearTaps(int inSize, int outSize) {
  Taps taps;
  double scale = static_cast<double>(inSize) / outSize;
  double filterScale = std::max(scale, 1.0);
  double support = 1.0 * filterScale;
  double inverse = 1.0 / filterScale;
  taps.stride = static_cast<int>(std::ceil(support)) * 2 + 1;
  taps.start.resize(outSize);
  taps.count.resize(outSize);
  taps.weights.assign(static_cast<size_t>(outSize) * taps.stride, 0);
  std::vector<double> k(taps.stride);
  for (int x = 0; x < outSize; x++) {
    double center = (x + 0.5) * scale;
    int lo = std::max(static_cast<int>(center - support + 0.5), 0);
    int hi = std::min(static_cast<int>(center + support + 0.5), inSize);
    int n = std::min(hi - lo, taps.stride);
    double total = 0;
    for (int i = 0; i < n; i++) {
      k[i] = std::max(0.0, 1.0 - std::abs((i + lo - center + 0.5) * inverse));
      total += k[i];
    }
    int32_t* w = &taps.weights[static_cast<size_t>(x) * taps.stride];
    for (int i = 0; i < n; i++) {
      double v = total != 0.0 ? k[i] / total : k[i];
      w[i] = static_cast<int32_t>(v < 0 ? -0.5 + v * (1 << kPrecisionBits) : 0.5 + v * (1 << kPrecisionBits));
    }
    taps.start[x] = lo;
    taps.count[x] = n;
  }
  return taps;
}

// PIL's clip8: the accumulator started at one half, so the shift rounds
inline uint8_t clip8(int32_t v) {
  if (v >= (1 << kPrecisionBits << 8)) return 255;
  if (v <= 0) return 0;
  return static_cast<uint8_t>(v >> kPrecisionBits);
}

// Crops `p`'s region and resizes it to outWidth x outHeight as PIL's Image.resize(BILINEAR) does
// (horizontal pass, then vertical, each rounding to uint8; a pass is skipped where that axis keeps
// its size), flipping horizontally when asked.
inline void cropResize(const ImageView& src, const Params& p, int outWidth, int outHeight, std::vector<uint8_t>& out) {
  out.resize(static_cast<size_t>(outWidth) * outHeight * 3);
  const size_t outStride = static_cast<size_t>(outWidth) * 3;
  auto sourceRow = [&](int y) { return src.data + (static_cast<size_t>(p.cropY + y) * src.width + p.cropX) * 3; };
  // horizontal pass (or a plain copy of the crop's rows) into `mid`, rows [rowLo, rowHi) of the crop
  Taps vertical;
  int rowLo = 0, rowHi = outHeight;
  bool needVertical = p.cropHeight != outHeight;
  if (needVertical) {
    vertical = bilinearTaps(p.cropHeight, outHeight);
    rowLo = vertical.start.front();
    rowHi = vertical.start.back() + vertical.count.back();
  }
  std::vector<uint8_t> midRows;
  uint8_t* mid;
  if (needVertical) {
    midRows.resize(static_cast<size_t>(rowHi - rowLo) * outStride);
    mid = midRows.data();
  } else {
    mid = out.data();
  }
  if (p.cropWidth == outWidth) {
    for (int y = rowLo; y < rowHi; y++) {
      const uint8_t* row = sourceRow(y);
      uint8_t* dst = mid + static_cast<size_t>(y - rowLo) * outStride;
      if (!p.flip) {
        std::copy(row, row + outStride, dst);
      } else {
        for (int x = 0; x < outWidth; x++) std::copy(row + (outWidth - 1 - x) * 3, row + (outWidth - x) * 3, dst + x * 3);
      }
    }
  } else {
    Taps horizontal = bilinearTaps(p.cropWidth, outWidth);
    for (int y = rowLo; y < rowHi; y++) {
      const uint8_t* row = sourceRow(y);
      uint8_t* dst = mid + static_cast<size_t>(y - rowLo) * outStride;
      for (int x = 0; x < outWidth; x++) {
        const int32_t* w = &horizontal.weights[static_cast<size_t>(x) * horizontal.stride];
        const uint8_t* s = row + horizontal.start[x] * 3;
        int32_t r = 1 << (kPrecisionBits - 1), g = r, b = r;
        for (int k = 0; k < horizontal.count[x]; k++, s += 3) {
          r += w[k] * s[0];
          g += w[k] * s[1];
          b += w[k] * s[2];
        }
        int dx = p.flip ? outWidth - 1 - x : x;
        dst[dx * 3] = clip8(r);
        dst[dx * 3 + 1] = clip8(g);
        dst[dx * 3 + 2] = clip8(b);
      }
    }
  }
  if (!needVertical) return;
  // vertical pass, a whole output row at a time so the inner loop runs over contiguous bytes
  std::vector<int32_t> acc(outStride);
  for (int y = 0; y < outHeight; y++) {
    const int32_t* w = &vertical.weights[static_cast<size_t>(y) * vertical.stride];
    std::fill(acc.begin(), acc.end(), 1 << (kPrecisionBits - 1));
    const uint8_t* s = mid + static_cast<size_t>(vertical.start[y] - rowLo) * outStride;
    for (int k = 0; k < vertical.count[y]; k++, s += outStride) {
      const int32_t weight = w[k];
      for (size_t x = 0; x < outStride; x++) acc[x] += weight * s[x];
    }
    uint8_t* dst = &out[static_cast<size_t>(y) * outStride];
    for (size_t x = 0; x < outStride; x++) dst[x] = clip8(acc[x]);
  }
}

// ITU-R 601-2 luma, as PIL's convert("L") computes it.
inline int luma(const uint8_t* px) { return (px[0] * 19595 + px[1] * 38470 + px[2] * 7471 + 0x8000) >> 16; }

// PIL's Image.blend(degenerate, image, factor): float arithmetic, truncated to uint8.
inline uint8_t blendByte(int degenerate, int value, float factor) {
  float v = static_cast<float>(degenerate) + factor * static_cast<float>(value - degenerate);
  if (v <= 0.0f) return 0;
  if (v >= 255.0f) return 255;
  return static_cast<uint8_t>(v);
}

inline void blendConstant(std::vector<uint8_t>& img, float factor, int degenerate) {
  uint8_t table[256];  // one blend per possible byte
  for (int v = 0; v < 256; v++) table[v] = blendByte(degenerate, v, factor);
  for (auto& b : img) b = table[b];
}

inline uint8_t clip8Int(int v) { return static_cast<uint8_t>(v <= 0 ? 0 : v >= 255 ? 255 : v); }

// PIL's RGB -> HSV (Convert.c rgb2hsv_row), all channels uint8
inline void rgbToHsv(const uint8_t* in, uint8_t* out) {
  uint8_t r = in[0], g = in[1], b = in[2];
  uint8_t maxc = std::max(r, std::max(g, b)), minc = std::min(r, std::min(g, b));
  out[2] = maxc;
  if (minc == maxc) {
    out[0] = 0;
    out[1] = 0;
    return;
  }
  float cr = static_cast<float>(maxc - minc);
  float s = cr / static_cast<float>(maxc);
  float rc = static_cast<float>(maxc - r) / cr, gc = static_cast<float>(maxc - g) / cr, bc = static_cast<float>(maxc - b) / cr;
  float h;
  if (r == maxc) h = bc - gc;
  else if (g == maxc) h = 2.0 + rc - bc;
  else h = 4.0 + gc - rc;
  h = std::fmod((h / 6.0 + 1.0), 1.0);
  out[0] = clip8Int(static_cast<int>(h * 255.0));
  out[1] = clip8Int(static_cast<int>(s * 255.0));
}

// PIL's HSV -> RGB (Convert.c hsv2rgb)
inline void hsvToRgb(const uint8_t* in, uint8_t* out) {
  uint8_t h = in[0], s = in[1], v = in[2];
  if (s == 0) {
    out[0] = out[1] = out[2] = v;
    return;
  }
  int i = static_cast<int>(std::floor(static_cast<float>(h) * 6.0 / 255.0));
  float f = static_cast<float>(h) * 6.0 / 255.0 - static_cast<float>(i);
  float fs = static_cast<float>(s) / 255.0;
  uint8_t up = clip8Int(static_cast<int>(std::round(static_cast<float>(v) * (1.0 - fs))));
  uint8_t uq = clip8Int(static_cast<int>(std::round(static_cast<float>(v) * (1.0 - fs * f))));
  uint8_t ut = clip8Int(static_cast<int>(std::round(static_cast<float>(v) * (1.0 - fs * (1.0 - f)))));
  switch (i % 6) {
    case 0: out[0] = v; out[1] = ut; out[2] = up; break;
    case 1: out[0] = uq; out[1] = v; out[2] = up; break;
    case 2: out[0] = up; out[1] = v; out[2] = ut; break;
    case 3: out[0] = up; out[1] = uq; out[2] = v; break;
    case 4: out[0] = ut; out[1] = up; out[2] = v; break;
    default: out[0] = v; out[1] = up; out[2] = uq; break;
  }
}

// torchvision's adjust_hue on a PIL image: to PIL's uint8 HSV, add hue * 255 (as numpy's uint8
// cast of the float, wrapping), back to RGB.
inline void shiftHue(std::vector<uint8_t>& img, double hueFactor) {
  auto shift = static_cast<uint8_t>(static_cast<int64_t>(hueFactor * 255));
  uint8_t hsv[3];
  for (size_t i = 0; i < img.size(); i += 3) {
    rgbToHsv(&img[i], hsv);
    hsv[0] = static_cast<uint8_t>(hsv[0] + shift);
    hsvToRgb(hsv, &img[i]);
  }
}

// torchvision's ColorJitter on a PIL image (ImageEnhance's blends, truncating like PIL).
inline void colorJitter(std::vector<uint8_t>& img, const Params& p) {
  size_t pixels = img.size() / 3;
  for (int op : p.order) {
    if (op == 0 && p.brightness != 1) {
      blendConstant(img, static_cast<float>(p.brightness), 0);
    } else if (op == 1 && p.contrast != 1) {
      // ImageEnhance.Contrast: the grey image of the rounded mean luma
      int64_t sum = 0;
      for (size_t i = 0; i < pixels; i++) sum += luma(&img[i * 3]);
      blendConstant(img, static_cast<float>(p.contrast), static_cast<int>(std::floor(static_cast<double>(sum) / pixels + 0.5)));
    } else if (op == 2 && p.saturation != 1) {
      // ImageEnhance.Color: blend with the image's own luma
      float factor = static_cast<float>(p.saturation);
      for (size_t i = 0; i < img.size(); i += 3) {
        int gray = luma(&img[i]);
        img[i] = blendByte(gray, img[i], factor);
        img[i + 1] = blendByte(gray, img[i + 1], factor);
        img[i + 2] = blendByte(gray, img[i + 2], factor);
      }
    } else if (op == 3 && p.hue != 0) {
      shiftHue(img, p.hue);
    }
  }
}

// (x / 255 - mean) / std into `out` at NCHW (planar) or NHWC (channels-last) layout.
inline void normalize(const std::vector<uint8_t>& img, const Output& o, bool channelsLast, float* out) {
  size_t pixels = static_cast<size_t>(o.width) * o.height;
  float scale[3], shift[3];
  for (int c = 0; c < 3; c++) {
    scale[c] = 1.0f / (255.0f * o.std[c]);
    shift[c] = -o.mean[c] / o.std[c];
  }
  if (channelsLast) {
    for (size_t i = 0; i < pixels * 3; i++) out[i] = img[i] * scale[i % 3] + shift[i % 3];
  } else {
    for (size_t i = 0; i < pixels; i++) {
      for (int c = 0; c < 3; c++) out[c * pixels + i] = img[i * 3 + c] * scale[c] + shift[c];
    }
  }
}

}  // namespace finetorch::augment
