// Shared by pickle_reader.cc and legacy_reader.cc only; not part of the formats API (pickle.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "formats/pickle.h"

namespace finetorch::formats {

struct Parsed {
  ValuePtr root;
  size_t end;
  std::map<std::string, std::shared_ptr<StorageRef>> storages;
};

// Unpickles the pickle starting at data[start]; also reports where it ended (the legacy format
// chains several pickles) and the storages its persistent ids named.
Parsed unpickleAt(const uint8_t* data, size_t size, size_t start, const Limits& limits);

// For error messages: printable ASCII as is, anything else escaped, long text cut short.
std::string quoted(std::string_view s);

}  // namespace finetorch::formats
