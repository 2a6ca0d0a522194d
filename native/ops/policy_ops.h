// The image operations of torchvision's AutoAugment, RandAugment and TrivialAugmentWide
// (autoaugment.py's _apply_op) on HWC uint8 RGB, as torchvision 0.14 computes them on PIL
// images, to the byte: geometry through PIL's nearest-neighbour affine transform (fill black),
// colour through ImageEnhance's blends, the rest through ImageOps' lookup tables.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "augment_kernels.h"

namespace finetorch::augment {

// The order of autoaugment.py's augmentation spaces (lib/data/auto-augment.ts uses the same codes).
enum class PolicyOp : int {
  Identity = 0, ShearX, ShearY, TranslateX, TranslateY, Rotate, Brightness, Color, Contrast, Sharpness,
  Posterize, Solarize, AutoContrast, Equalize, Invert,
};
constexpr int kPolicyOpCount = 15;

// One op with the signed magnitude torchvision passes to _apply_op.
struct PolicyStep {
  int op = 0;
  double magnitude = 0;
};

// Up to four ops per image (RandAugment's num_ops is capped there); per image they take
// 1 + 2 * kMaxPolicySteps numbers: count, then (op, magnitude) pairs.
constexpr int kMaxPolicySteps = 4;
constexpr int kPolicyParams = 1 + 2 * kMaxPolicySteps;

struct PolicySteps {
  int count = 0;
  std::array<PolicyStep, kMaxPolicySteps> steps;
};

// Reads one image's block (count, then op/magnitude pairs); TS has validated it, this keeps memory safe.
inline PolicySteps readPolicySteps(const double* block, size_t image) {
  PolicySteps policy;
  policy.count = static_cast<int>(block[0]);
  if (policy.count < 0 || policy.count > kMaxPolicySteps) {
    throw std::invalid_argument("augment: policy op count of image " + std::to_string(image) + " is outside 0-4");
  }
  for (int k = 0; k < policy.count; k++) {
    policy.steps[k].op = static_cast<int>(block[1 + 2 * k]);
    policy.steps[k].magnitude = block[2 + 2 * k];
    if (policy.steps[k].op < 0 || policy.steps[k].op >= kPolicyOpCount) {
      throw std::invalid_argument("augment: unknown policy op " + std::to_string(policy.steps[k].op) + " for image " + std::to_string(image));
    }
  }
  return policy;
}

struct RgbImage {
  std::vector<uint8_t>& pixels;
  int width, height;
};

// PIL's Image.transform(AFFINE, NEAREST) with a black fill; `a` maps output to input coordinates
// (Geometry.c: a pure scale/translation goes through ImagingScaleAffine, the rest through 16.16
// fixed point, both sampling at the pixel centre). PIL falls back to doubles only when a corner
// maps beyond ±32768 pixels, which images up to the config's 4096² with these magnitudes never do.
inline void affineNearest(RgbImage img, const double a[6]) {
  const int w = img.width, h = img.height;
  std::vector<uint8_t> out(img.pixels.size(), 0);
  const uint8_t* in = img.pixels.data();
  auto copyPixel = [&](int x, int y, int xin, int yin) {
    const uint8_t* s = in + (static_cast<size_t>(yin) * w + xin) * 3;
    uint8_t* d = &out[(static_cast<size_t>(y) * w + x) * 3];
    d[0] = s[0], d[1] = s[1], d[2] = s[2];
  };
  if (a[1] == 0 && a[3] == 0) {
    auto coord = [](double v) { return v < 0.0 ? -1 : static_cast<int>(v); };
    std::vector<int> xin(w);
    double xo = a[2] + a[0] * 0.5, yo = a[5] + a[4] * 0.5;
    for (int x = 0; x < w; x++, xo += a[0]) xin[x] = coord(xo);
    for (int y = 0; y < h; y++, yo += a[4]) {
      int yi = coord(yo);
      if (yi < 0 || yi >= h) continue;
      for (int x = 0; x < w; x++) {
        if (xin[x] >= 0 && xin[x] < w) copyPixel(x, y, xin[x], yi);
      }
    }
  } else {
    auto fix = [](double v) { return static_cast<int>(std::floor(v * 65536.0 + 0.5)); };
    int a0 = fix(a[0]), a1 = fix(a[1]), a3 = fix(a[3]), a4 = fix(a[4]);
    int a2 = fix(a[2] + a[0] * 0.5 + a[1] * 0.5), a5 = fix(a[5] + a[3] * 0.5 + a[4] * 0.5);
    for (int y = 0; y < h; y++, a2 += a1, a5 += a4) {
      int xx = a2, yy = a5;
      for (int x = 0; x < w; x++, xx += a0, yy += a3) {
        int xi = xx >> 16, yi = yy >> 16;
        if (xi >= 0 && xi < w && yi >= 0 && yi < h) copyPixel(x, y, xi, yi);
      }
    }
  }
  img.pixels.swap(out);
}

// torchvision's _get_inverse_affine_matrix, term by term (the same doubles, so the same pixels).
inline void inverseAffineMatrix(double cx, double cy, double angle, double tx, double ty, double shearX, double shearY, double m[6]) {
  const double degToRad = M_PI / 180.0;
  double rot = angle * degToRad, sx = shearX * degToRad, sy = shearY * degToRad;
  double a = std::cos(rot - sy) / std::cos(sy);
  double b = -std::cos(rot - sy) * std::tan(sx) / std::cos(sy) - std::sin(rot);
  double c = std::sin(rot - sy) / std::cos(sy);
  double d = -std::sin(rot - sy) * std::tan(sx) / std::cos(sy) + std::cos(rot);
  double matrix[6] = {d, -b, 0.0, -c, a, 0.0};  // scale 1
  matrix[2] += matrix[0] * (-cx - tx) + matrix[1] * (-cy - ty);
  matrix[5] += matrix[3] * (-cx - tx) + matrix[4] * (-cy - ty);
  matrix[2] += cx;
  matrix[5] += cy;
  for (int i = 0; i < 6; i++) m[i] = matrix[i];
}

// Python's round(x, 15): correctly rounded to 15 decimals, as glibc's printf rounds too.
inline double round15(double x) {
  char text[64];
  std::snprintf(text, sizeof text, "%.15f", x);
  return std::strtod(text, nullptr);
}

// PIL's transpose(ROTATE_90 / ROTATE_180 / ROTATE_270): quarter turns counter-clockwise.
inline void quarterTurns(RgbImage img, int turns) {
  const int w = img.width, h = img.height;  // 90 and 270 only reach here for squares
  std::vector<uint8_t> out(img.pixels.size());
  for (int y = 0; y < h; y++) {
    for (int x = 0; x < w; x++) {
      int xs = x, ys = y;
      if (turns == 1) xs = w - 1 - y, ys = x;
      else if (turns == 2) xs = w - 1 - x, ys = h - 1 - y;
      else xs = y, ys = h - 1 - x;
      const uint8_t* s = &img.pixels[(static_cast<size_t>(ys) * w + xs) * 3];
      uint8_t* d = &out[(static_cast<size_t>(y) * w + x) * 3];
      d[0] = s[0], d[1] = s[1], d[2] = s[2];
    }
  }
  img.pixels.swap(out);
}

// PIL's Image.rotate(angle, NEAREST) about the centre: its quarter-turn shortcuts, then the
// affine transform with the matrix entries rounded to 15 decimals.
inline void rotate(RgbImage img, double degrees) {
  double angle = std::fmod(degrees, 360.0);  // Python's %: the sign of 360
  if (angle < 0) angle += 360.0;
  if (angle == 0) return;
  if (angle == 180) return quarterTurns(img, 2);
  if ((angle == 90 || angle == 270) && img.width == img.height) return quarterTurns(img, angle == 90 ? 1 : 3);
  double radians = -(angle * (M_PI / 180.0));
  double m[6] = {round15(std::cos(radians)), round15(std::sin(radians)), 0.0, round15(-std::sin(radians)), round15(std::cos(radians)), 0.0};
  double cx = img.width / 2.0, cy = img.height / 2.0;
  double x = -cx - 0, y = -cy - 0;
  double tx = m[0] * x + m[1] * y + m[2], ty = m[3] * x + m[4] * y + m[5];
  m[2] = tx + cx;
  m[5] = ty + cy;
  affineNearest(img, m);
}

// ImageFilter.SMOOTH (3x3, weights 1 and a centre 5, over 13) as Filter.c computes it in float;
// the one-pixel border keeps the input.
inline std::vector<uint8_t> smooth(const RgbImage& img) {
  std::vector<uint8_t> out(img.pixels);
  const int w = img.width, h = img.height;
  const float edge = static_cast<float>(1.0 / 13.0), centre = static_cast<float>(5.0 / 13.0);
  const size_t stride = static_cast<size_t>(w) * 3;
  for (int y = 1; y < h - 1; y++) {
    const uint8_t* below = &img.pixels[(y + 1) * stride];
    const uint8_t* row = &img.pixels[y * stride];
    const uint8_t* above = &img.pixels[(y - 1) * stride];
    uint8_t* dst = &out[y * stride];
    for (int x = 1; x < w - 1; x++) {
      for (int c = 0; c < 3; c++) {
        size_t i = x * 3 + c;
        float k1 = static_cast<float>(below[i - 3]) * edge + static_cast<float>(below[i]) * edge + static_cast<float>(below[i + 3]) * edge;
        float k2 = static_cast<float>(row[i - 3]) * edge + static_cast<float>(row[i]) * centre + static_cast<float>(row[i + 3]) * edge;
        float k3 = static_cast<float>(above[i - 3]) * edge + static_cast<float>(above[i]) * edge + static_cast<float>(above[i + 3]) * edge;
        float ss = k1 + k2 + k3;
        dst[i] = ss <= 0.0f ? 0 : ss >= 255.0f ? 255 : static_cast<uint8_t>(ss + 0.5f);
      }
    }
  }
  return out;
}

inline void applyTable(std::vector<uint8_t>& pixels, const std::array<std::array<uint8_t, 256>, 3>& table) {
  for (size_t i = 0; i < pixels.size(); i += 3) {
    pixels[i] = table[0][pixels[i]];
    pixels[i + 1] = table[1][pixels[i + 1]];
    pixels[i + 2] = table[2][pixels[i + 2]];
  }
}

inline std::array<std::array<int64_t, 256>, 3> histograms(const std::vector<uint8_t>& pixels) {
  std::array<std::array<int64_t, 256>, 3> h{};
  for (size_t i = 0; i < pixels.size(); i += 3) {
    h[0][pixels[i]]++, h[1][pixels[i + 1]]++, h[2][pixels[i + 2]]++;
  }
  return h;
}

// ImageOps.autocontrast(image): each band stretched from its lowest to its highest value.
inline void autoContrast(std::vector<uint8_t>& pixels) {
  auto h = histograms(pixels);
  std::array<std::array<uint8_t, 256>, 3> table;
  for (int b = 0; b < 3; b++) {
    int lo = 0, hi = 255;
    while (lo < 255 && h[b][lo] == 0) lo++;
    while (hi > 0 && h[b][hi] == 0) hi--;
    for (int i = 0; i < 256; i++) {
      if (hi <= lo) {
        table[b][i] = static_cast<uint8_t>(i);
        continue;
      }
      double scale = 255.0 / (hi - lo), offset = -lo * scale;
      int v = static_cast<int>(i * scale + offset);
      table[b][i] = clip8Int(v);
    }
  }
  applyTable(pixels, table);
}

// ImageOps.equalize(image): per band, the cumulative histogram in steps of (pixels - last bin) / 255.
inline void equalize(std::vector<uint8_t>& pixels) {
  auto h = histograms(pixels);
  std::array<std::array<uint8_t, 256>, 3> table;
  for (int b = 0; b < 3; b++) {
    int64_t total = 0, last = 0, used = 0;
    for (int i = 0; i < 256; i++) {
      if (h[b][i]) total += h[b][i], last = h[b][i], used++;
    }
    int64_t step = used <= 1 ? 0 : (total - last) / 255;
    int64_t n = step / 2;
    for (int i = 0; i < 256; i++) {
      if (step == 0) {
        table[b][i] = static_cast<uint8_t>(i);
        continue;
      }
      int64_t v = n / step;
      table[b][i] = static_cast<uint8_t>(v > 255 ? 255 : v);  // Image.point clips its table to bytes
      n += h[b][i];
    }
  }
  applyTable(pixels, table);
}

inline void pointTable(std::vector<uint8_t>& pixels, uint8_t (*map)(int, double), double arg) {
  std::array<std::array<uint8_t, 256>, 3> table;
  for (int i = 0; i < 256; i++) table[0][i] = table[1][i] = table[2][i] = map(i, arg);
  applyTable(pixels, table);
}

// One of _apply_op's ops with torchvision's fill None (black) and NEAREST interpolation.
inline void applyPolicyStep(RgbImage img, const PolicyStep& step) {
  const double m = step.magnitude;
  const double radToDeg = 180.0 / M_PI;
  double matrix[6];
  switch (static_cast<PolicyOp>(step.op)) {
    case PolicyOp::Identity:
      return;
    case PolicyOp::ShearX:
      inverseAffineMatrix(0, 0, 0.0, 0, 0, std::atan(m) * radToDeg, 0.0, matrix);
      return affineNearest(img, matrix);
    case PolicyOp::ShearY:
      inverseAffineMatrix(0, 0, 0.0, 0, 0, 0.0, std::atan(m) * radToDeg, matrix);
      return affineNearest(img, matrix);
    case PolicyOp::TranslateX:
      inverseAffineMatrix(img.width * 0.5, img.height * 0.5, 0.0, std::trunc(m), 0, 0.0, 0.0, matrix);
      return affineNearest(img, matrix);
    case PolicyOp::TranslateY:
      inverseAffineMatrix(img.width * 0.5, img.height * 0.5, 0.0, 0, std::trunc(m), 0.0, 0.0, matrix);
      return affineNearest(img, matrix);
    case PolicyOp::Rotate:
      return rotate(img, m);
    case PolicyOp::Brightness:
      return blendConstant(img.pixels, static_cast<float>(1.0 + m), 0);
    case PolicyOp::Color: {
      Params p;
      p.saturation = 1.0 + m;
      p.order = {2, -1, -1, -1};
      return colorJitter(img.pixels, p);
    }
    case PolicyOp::Contrast: {
      Params p;
      p.contrast = 1.0 + m;
      p.order = {1, -1, -1, -1};
      return colorJitter(img.pixels, p);
    }
    case PolicyOp::Sharpness: {
      std::vector<uint8_t> degenerate = smooth(img);
      float factor = static_cast<float>(1.0 + m);
      for (size_t i = 0; i < img.pixels.size(); i++) img.pixels[i] = blendByte(degenerate[i], img.pixels[i], factor);
      return;
    }
    case PolicyOp::Posterize:
      return pointTable(img.pixels, [](int v, double bits) { return static_cast<uint8_t>(v & ~((1 << (8 - static_cast<int>(bits))) - 1)); }, std::trunc(m));
    case PolicyOp::Solarize:
      return pointTable(img.pixels, [](int v, double threshold) { return static_cast<uint8_t>(v < threshold ? v : 255 - v); }, m);
    case PolicyOp::AutoContrast:
      return autoContrast(img.pixels);
    case PolicyOp::Equalize:
      return equalize(img.pixels);
    case PolicyOp::Invert:
      return pointTable(img.pixels, [](int v, double) { return static_cast<uint8_t>(255 - v); }, 0);
  }
}

inline void applyPolicy(RgbImage img, const PolicySteps& policy) {
  for (int i = 0; i < policy.count; i++) applyPolicyStep(img, policy.steps[i]);
}

}  // namespace finetorch::augment
