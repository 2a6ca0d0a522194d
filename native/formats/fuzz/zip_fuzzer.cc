// libFuzzer target over checkZipArchive() (formats/zip.h), the directory check that runs before
// libtorch's zip reader: any bytes must either throw FormatError or give entries that are stored,
// lie inside the input, start with their local header and share no byte with each other, so that
// libtorch can allocate at most the input's size for all of them together.
//
// Built and run by scripts/fuzz-native.sh (clang -fsanitize=fuzzer,address,undefined).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <utility>
#include <vector>

#include "formats/zip.h"

using namespace finetorch::formats;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<ZipEntry> entries;
  try {
    entries = checkZipArchive(data, size);
  } catch (const FormatError&) {
    return 0;
  }
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  uint64_t total = 0;
  for (const ZipEntry& e : entries) {
    if (e.dataOffset > size || e.size > size - e.dataOffset || e.localHeaderOffset + 30 > e.dataOffset) {
      std::fprintf(stderr, "entry '%s' lies outside the input\n", e.name.c_str());
      std::abort();
    }
    ranges.emplace_back(e.localHeaderOffset, e.dataOffset + e.size);
    total += e.size;
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].first < ranges[i - 1].second) {
      std::fprintf(stderr, "entries overlap\n");
      std::abort();
    }
  }
  if (total > size) {
    std::fprintf(stderr, "entries hold more bytes than the input\n");
    std::abort();
  }
  return 0;
}
