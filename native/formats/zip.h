// A check of a torch.save zip archive's directory before libtorch's zip reader (miniz) trusts it.
// No torch headers: pure C++, fuzzable alone (native/formats/fuzz/zip_fuzzer.cc).
//
// libtorch's PyTorchStreamReader allocates each record's *claimed* uncompressed size before it
// reads a byte (and its constructor already reads the "version" record), so a 2 KB file whose
// directory claims 100 GB, a deflated record that inflates to gigabytes, or thousands of directory
// entries pointing at the same 1 MB of data would all be allocated. checkZipArchive() reads the
// directory the way miniz does (same end-of-directory record, zip64 records, extra fields and local
// headers) and refuses, with a FormatError, anything torch.save does not write:
//   * a compressed or encrypted entry (torch.save stores every record uncompressed),
//   * an entry whose compressed and uncompressed sizes differ,
//   * an entry whose local header or data lies outside the file,
//   * two entries whose local header + data overlap,
//   * two entries with the same name (miniz looks names up ignoring ASCII case, so names that differ
//     only in case count as the same): which one a lookup finds would be ambiguous.
// What passes has every record inside the file and no byte shared between records, so whatever
// libtorch allocates for all the records it reads together is at most the file's size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "formats/pickle.h"  // FormatError

namespace finetorch::formats {

struct ZipEntry {
  std::string name;
  uint64_t localHeaderOffset = 0;
  uint64_t dataOffset = 0;  // first byte of the record's data
  uint64_t size = 0;        // stored: compressed size == uncompressed size
  uint32_t crc32 = 0;       // as the central directory records it
};

// Reads exactly `n` bytes at `offset` into `out`; false when it cannot (the file is shorter).
using ReadAt = std::function<bool(uint64_t offset, void* out, size_t n)>;

// The entries of the archive of `fileSize` bytes, in central directory order, or a FormatError
// ("zip archive: ...") saying what is wrong.
std::vector<ZipEntry> checkZipArchive(uint64_t fileSize, const ReadAt& read);

// The same over bytes in memory.
std::vector<ZipEntry> checkZipArchive(const uint8_t* data, size_t size);

// The zip (IEEE) CRC-32 of `size` bytes, continuing from `crc` (0 to start).
uint32_t zipCrc32(const uint8_t* data, size_t size, uint32_t crc = 0);

}  // namespace finetorch::formats
