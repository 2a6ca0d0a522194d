// The dtype names used across the boundary ("float32", "int64", ...), PyTorch's spelling.
#pragma once

#include <stdexcept>
#include <string>

#include <c10/core/ScalarType.h>

namespace finetorch {

inline c10::ScalarType parseDType(const std::string& name) {
  if (name == "float32") return c10::kFloat;
  if (name == "float64") return c10::kDouble;
  if (name == "float16") return c10::kHalf;
  if (name == "bfloat16") return c10::kBFloat16;
  if (name == "int64") return c10::kLong;
  if (name == "int32") return c10::kInt;
  if (name == "int16") return c10::kShort;
  if (name == "int8") return c10::kChar;
  if (name == "uint8") return c10::kByte;
  if (name == "bool") return c10::kBool;
  throw std::invalid_argument("unknown dtype '" + name + "'");
}

inline std::string dtypeName(c10::ScalarType type) {
  switch (type) {
    case c10::kFloat: return "float32";
    case c10::kDouble: return "float64";
    case c10::kHalf: return "float16";
    case c10::kBFloat16: return "bfloat16";
    case c10::kLong: return "int64";
    case c10::kInt: return "int32";
    case c10::kShort: return "int16";
    case c10::kChar: return "int8";
    case c10::kByte: return "uint8";
    case c10::kBool: return "bool";
    default: return c10::toString(type);
  }
}

}  // namespace finetorch
