// torchvision's RandomErasing (value 0) on one normalised image: F.erase zeroes the box on every
// channel of the float tensor. The box is drawn in TypeScript (lib/data/transforms.ts).
#pragma once

#include <algorithm>
#include <cstddef>

namespace finetorch::augment {

struct EraseBox {
  int x = 0, y = 0, width = 0, height = 0;  // width 0: this image keeps every pixel
};

// `out` holds one image of width x height x 3 floats, planar (NCHW) or interleaved (channels-last).
inline void erase(float* out, int width, int height, bool channelsLast, const EraseBox& box) {
  if (box.width <= 0 || box.height <= 0) return;
  size_t pixels = static_cast<size_t>(width) * height;
  for (int y = box.y; y < box.y + box.height; y++) {
    size_t row = static_cast<size_t>(y) * width + box.x;
    if (channelsLast) {
      std::fill(out + row * 3, out + (row + box.width) * 3, 0.0f);
    } else {
      for (int c = 0; c < 3; c++) std::fill(out + c * pixels + row, out + c * pixels + row + box.width, 0.0f);
    }
  }
}

}  // namespace finetorch::augment
