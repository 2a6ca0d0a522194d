// Which quantized engine runs the int8 kernels: the best one this libtorch registers.
#pragma once

#include <string>

namespace finetorch::quantized {

// Makes `preferred` (or, when empty, the best supported: x86 > fbgemm > onednn > qnnpack) the
// process's quantized engine and returns its name; throws when `preferred` is not supported.
std::string selectEngine(const std::string& preferred = "");

// Activation observers of the x86/fbgemm engines use 7-bit ranges (their VPMADDUBSW kernels can
// saturate 16-bit sums otherwise); onednn and qnnpack use the full 8 bits. As PyTorch's qconfig.
bool engineReducesRange(const std::string& engine);

}  // namespace finetorch::quantized
