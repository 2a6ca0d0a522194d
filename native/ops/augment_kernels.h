// Per-image augmentation kernels on HWC uint8 RGB, in plain C++ so they run on any thread without
// touching libtorch's thread pool: crop + PIL-style antialiased bilinear resize, horizontal flip,
// torchvision's ColorJitter (brightness, contrast, saturation, hue in a given order), and
// normalisation into float32.
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
// with the reduction factor, which is what antialiasing means there.
struct Taps {
  std::vector<int> start, count;
  std::vector<double> weights;  // count[i] weights per output, packed at `stride`
  int stride = 0;
};

inline Taps bilinearTaps(int inSize, int outSize) {
  Taps taps;
  double scale = static_cast<double>(inSize) / outSize;
  double filterScale = std::max(scale, 1.0);
  double support = 1.0 * filterScale;
  taps.stride = static_cast<int>(std::ceil(support)) * 2 + 1;
  taps.start.resize(outSize);
  taps.count.resize(outSize);
  taps.weights.assign(static_cast<size_t>(outSize) * taps.stride, 0.0);
  for (int x = 0; x < outSize; x++) {
    double center = (x + 0.5) * scale;
    int lo = std::max(static_cast<int>(center - support + 0.5), 0);
    int hi = std::min(static_cast<int>(center + support + 0.5), inSize);
    int n = std::min(hi - lo, taps.stride);
    double total = 0;
    double* w = &taps.weights[static_cast<size_t>(x) * taps.stride];
    for (int k = 0; k < n; k++) {
      double t = (k + lo - center + 0.5) / filterScale;
      w[k] = std::max(0.0, 1.0 - std::abs(t));
      total += w[k];
    }
    if (total > 0) {
      for (int k = 0; k < n; k++) w[k] /= total;
    }
    taps.start[x] = lo;
    taps.count[x] = n;
  }
  return taps;
}

inline uint8_t clampByte(double v) { return static_cast<uint8_t>(std::min(255.0, std::max(0.0, std::round(v)))); }

// Crops `p`'s region and resizes it to out.width x out.height (separable: rows, then columns,
// rounding to uint8 in between as PIL does), flipping horizontally when asked.
inline void cropResize(const ImageView& src, const Params& p, int outWidth, int outHeight, std::vector<uint8_t>& out) {
  out.resize(static_cast<size_t>(outWidth) * outHeight * 3);
  if (p.cropWidth == outWidth && p.cropHeight == outHeight) {
    for (int y = 0; y < outHeight; y++) {
      const uint8_t* row = src.data + (static_cast<size_t>(p.cropY + y) * src.width + p.cropX) * 3;
      uint8_t* dst = &out[static_cast<size_t>(y) * outWidth * 3];
      if (!p.flip) {
        std::copy(row, row + outWidth * 3, dst);
      } else {
        for (int x = 0; x < outWidth; x++) std::copy(row + (outWidth - 1 - x) * 3, row + (outWidth - x) * 3, dst + x * 3);
      }
    }
    return;
  }
  Taps horizontal = bilinearTaps(p.cropWidth, outWidth);
  Taps vertical = bilinearTaps(p.cropHeight, outHeight);
  // rows of the crop that any output row reads
  int rowLo = vertical.start.front();
  int rowHi = vertical.start.back() + vertical.count.back();
  std::vector<uint8_t> mid(static_cast<size_t>(rowHi - rowLo) * outWidth * 3);
  for (int y = rowLo; y < rowHi; y++) {
    const uint8_t* row = src.data + (static_cast<size_t>(p.cropY + y) * src.width + p.cropX) * 3;
    uint8_t* dst = &mid[static_cast<size_t>(y - rowLo) * outWidth * 3];
    for (int x = 0; x < outWidth; x++) {
      const double* w = &horizontal.weights[static_cast<size_t>(x) * horizontal.stride];
      const uint8_t* s = row + horizontal.start[x] * 3;
      double r = 0, g = 0, b = 0;
      for (int k = 0; k < horizontal.count[x]; k++, s += 3) {
        r += w[k] * s[0];
        g += w[k] * s[1];
        b += w[k] * s[2];
      }
      int dx = p.flip ? outWidth - 1 - x : x;
      dst[dx * 3] = clampByte(r);
      dst[dx * 3 + 1] = clampByte(g);
      dst[dx * 3 + 2] = clampByte(b);
    }
  }
  for (int y = 0; y < outHeight; y++) {
    const double* w = &vertical.weights[static_cast<size_t>(y) * vertical.stride];
    uint8_t* dst = &out[static_cast<size_t>(y) * outWidth * 3];
    for (int x = 0; x < outWidth * 3; x++) {
      double v = 0;
      const uint8_t* s = &mid[static_cast<size_t>(vertical.start[y] - rowLo) * outWidth * 3 + x];
      for (int k = 0; k < vertical.count[y]; k++, s += outWidth * 3) v += w[k] * *s;
      dst[x] = clampByte(v);
    }
  }
}

// ITU-R 601-2 luma, as PIL's convert("L") computes it.
inline double luma(const uint8_t* px) { return (px[0] * 19595 + px[1] * 38470 + px[2] * 7471 + 0x8000) >> 16; }

inline void blend(std::vector<uint8_t>& img, double factor, const std::vector<double>& degenerate, bool perPixel) {
  for (size_t i = 0; i < img.size(); i++) {
    double d = perPixel ? degenerate[i / 3] : degenerate[0];
    img[i] = clampByte(d + factor * (img[i] - d));
  }
}

inline void shiftHue(std::vector<uint8_t>& img, double hueFactor) {
  for (size_t i = 0; i < img.size(); i += 3) {
    double r = img[i] / 255.0, g = img[i + 1] / 255.0, b = img[i + 2] / 255.0;
    double maxc = std::max({r, g, b}), minc = std::min({r, g, b});
    double v = maxc, delta = maxc - minc;
    double s = maxc > 0 ? delta / maxc : 0;
    double h = 0;
    if (delta > 0) {
      if (maxc == r) h = std::fmod((g - b) / delta, 6.0);
      else if (maxc == g) h = (b - r) / delta + 2.0;
      else h = (r - g) / delta + 4.0;
      h /= 6.0;
    }
    h = std::fmod(h + hueFactor + 1.0, 1.0);
    double hh = h * 6.0;
    int sector = static_cast<int>(std::floor(hh)) % 6;
    double f = hh - std::floor(hh);
    double pp = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
    double rgb[6][3] = {{v, t, pp}, {q, v, pp}, {pp, v, t}, {pp, q, v}, {t, pp, v}, {v, pp, q}};
    img[i] = clampByte(rgb[sector][0] * 255);
    img[i + 1] = clampByte(rgb[sector][1] * 255);
    img[i + 2] = clampByte(rgb[sector][2] * 255);
  }
}

// torchvision's ColorJitter on a uint8 image, each adjustment rounding back to uint8 like PIL.
inline void colorJitter(std::vector<uint8_t>& img, const Params& p) {
  size_t pixels = img.size() / 3;
  for (int op : p.order) {
    if (op == 0 && p.brightness != 1) {
      blend(img, p.brightness, {0.0}, false);
    } else if (op == 1 && p.contrast != 1) {
      double sum = 0;
      for (size_t i = 0; i < pixels; i++) sum += luma(&img[i * 3]);
      blend(img, p.contrast, {std::floor(sum / pixels + 0.5)}, false);
    } else if (op == 2 && p.saturation != 1) {
      std::vector<double> gray(pixels);
      for (size_t i = 0; i < pixels; i++) gray[i] = luma(&img[i * 3]);
      blend(img, p.saturation, gray, true);
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
