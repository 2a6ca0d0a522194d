// The zip directory check (see zip.h). It follows miniz 2.x, the zip reader inside libtorch
// (mz_zip_reader_locate_header_sig, mz_zip_reader_read_central_dir, mz_zip_file_stat_internal and
// the local header handling of mz_zip_reader_extract_to_mem_no_alloc), so that the sizes and offsets
// checked here are the ones libtorch will use. Where miniz is lenient this is stricter: anything
// ambiguous is refused rather than guessed at.

#include "formats/zip.h"

#include <algorithm>
#include <cstring>

namespace finetorch::formats {

namespace {

constexpr uint32_t kEndSig = 0x06054b50;        // end of central directory record
constexpr uint32_t kCentralSig = 0x02014b50;    // central directory file header
constexpr uint32_t kLocalSig = 0x04034b50;      // local file header
constexpr uint32_t kZip64LocatorSig = 0x07064b50;
constexpr uint32_t kZip64EndSig = 0x06064b50;
constexpr size_t kEndSize = 22, kCentralSize = 46, kLocalSize = 30, kZip64LocatorSize = 20, kZip64EndSize = 56;
constexpr uint64_t kMax32 = 0xFFFFFFFFu;

uint16_t le16(const uint8_t* p) { return uint16_t(p[0] | p[1] << 8); }
uint32_t le32(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24; }
uint64_t le64(const uint8_t* p) { return uint64_t(le32(p)) | uint64_t(le32(p + 4)) << 32; }

[[noreturn]] void zipFail(const std::string& what) { throw FormatError("zip archive: " + what); }

std::string printable(const std::string& name) {
  std::string out;
  for (size_t i = 0; i < name.size() && i < 80; ++i) {
    unsigned char c = static_cast<unsigned char>(name[i]);
    out += (c >= 0x20 && c < 0x7f) ? char(c) : '?';
  }
  return "'" + out + (name.size() > 80 ? "'..." : "'");
}

void readOrFail(const ReadAt& read, uint64_t offset, void* out, size_t n, const char* what) {
  if (!read(offset, out, n)) zipFail(std::string("truncated: cannot read the ") + what + " at byte " + std::to_string(offset));
}

}  // namespace

std::vector<ZipEntry> checkZipArchive(uint64_t size, const ReadAt& read) {
  if (size < kEndSize) zipFail("too short to be a zip archive (" + std::to_string(size) + " bytes)");

  // The end of central directory record: miniz takes the last signature with a whole record after
  // it, searching back about 64 KiB (the longest archive comment) from the end.
  const size_t tailSize = size_t(std::min<uint64_t>(size, 0xFFFF + kEndSize));
  const uint64_t tailStart = size - tailSize;
  std::vector<uint8_t> tail(tailSize);
  readOrFail(read, tailStart, tail.data(), tailSize, "end of the file");
  size_t at = tailSize - kEndSize + 1;
  bool found = false;
  while (at-- > 0) {
    if (le32(&tail[at]) == kEndSig) {
      found = true;
      break;
    }
  }
  if (!found) zipFail("no end of central directory record in the last 64 KiB");
  const uint64_t endOffset = tailStart + at;
  const uint8_t* end = &tail[at];

  uint64_t entries = le16(end + 10), entriesHere = le16(end + 8);
  uint64_t disk = le16(end + 4), directoryDisk = le16(end + 6);
  uint64_t directorySize = le32(end + 12), directoryOffset = le32(end + 16);

  // zip64: a locator right before the record, pointing at a zip64 end of central directory record.
  if (endOffset >= kZip64LocatorSize + kZip64EndSize) {
    uint8_t locator[kZip64LocatorSize];
    readOrFail(read, endOffset - kZip64LocatorSize, locator, sizeof locator, "zip64 locator");
    if (le32(locator) == kZip64LocatorSig) {
      const uint64_t end64Offset = le64(locator + 8);
      if (end64Offset > size - kZip64EndSize) zipFail("the zip64 end of central directory record lies outside the file");
      uint8_t end64[kZip64EndSize];
      readOrFail(read, end64Offset, end64, sizeof end64, "zip64 end of central directory record");
      if (le32(end64) == kZip64EndSig) {
        if (le64(end64 + 4) < kZip64EndSize - 12) zipFail("zip64 end of central directory record is too short");
        if (le32(locator + 16) != 1) zipFail("multi-disk archives are not supported");
        entries = le64(end64 + 32);
        entriesHere = le64(end64 + 24);
        directorySize = le64(end64 + 40);
        disk = le32(end64 + 16);
        directoryDisk = le32(end64 + 20);
        directoryOffset = le64(end64 + 48);
        if (entries > kMax32 || entriesHere > kMax32 || directorySize > kMax32)
          zipFail("zip64 record claims " + std::to_string(entries) + " entries in " + std::to_string(directorySize) +
                  " bytes of central directory");
      }
    }
  }
  if (entries != entriesHere || ((disk | directoryDisk) != 0 && (disk != 1 || directoryDisk != 1)))
    zipFail("multi-disk archives are not supported");
  if (directorySize < entries * kCentralSize)
    zipFail("the central directory (" + std::to_string(directorySize) + " bytes) is too small for " +
            std::to_string(entries) + " entries");
  if (directoryOffset > size || directorySize > size - directoryOffset)
    zipFail("the central directory (" + std::to_string(directorySize) + " bytes at byte " +
            std::to_string(directoryOffset) + ") lies outside the " + std::to_string(size) + "-byte file");

  std::vector<uint8_t> directory(static_cast<size_t>(directorySize));  // <= the file size (checked above)
  if (directorySize) readOrFail(read, directoryOffset, directory.data(), directory.size(), "central directory");

  std::vector<ZipEntry> out;
  out.reserve(static_cast<size_t>(entries));
  size_t pos = 0;
  for (uint64_t i = 0; i < entries; ++i) {
    const size_t left = directory.size() - pos;
    const uint8_t* p = directory.data() + pos;
    if (left < kCentralSize || le32(p) != kCentralSig) zipFail("central directory entry " + std::to_string(i) + " is damaged");
    const uint16_t flags = le16(p + 8), method = le16(p + 10);
    const uint16_t nameLength = le16(p + 28), extraLength = le16(p + 30), commentLength = le16(p + 32);
    const uint16_t startDisk = le16(p + 34);
    const size_t recordSize = kCentralSize + size_t(nameLength) + extraLength + commentLength;
    if (recordSize > left) zipFail("central directory entry " + std::to_string(i) + " runs past the directory");
    ZipEntry entry;
    entry.name.assign(reinterpret_cast<const char*>(p + kCentralSize), nameLength);
    const std::string name = printable(entry.name);
    uint64_t compressed = le32(p + 20), uncompressed = le32(p + 24), local = le32(p + 42);

    // zip64 extended information (extra field 1) replaces, in this order, each of the three fields
    // that holds 0xFFFFFFFF; miniz only looks for it when one does.
    if (compressed == kMax32 || uncompressed == kMax32 || local == kMax32) {
      const uint8_t* extra = p + kCentralSize + nameLength;
      size_t remaining = extraLength;
      bool zip64 = false;
      while (remaining > 0) {
        if (remaining < 4) zipFail("entry " + name + " has a damaged extra field");
        const uint16_t id = le16(extra), fieldSize = le16(extra + 2);
        if (size_t(fieldSize) + 4 > remaining) zipFail("entry " + name + " has a damaged extra field");
        if (id == 1) {
          const uint8_t* field = extra + 4;
          size_t fieldLeft = fieldSize;
          for (uint64_t* v : {&uncompressed, &compressed, &local}) {
            if (*v != kMax32) continue;
            if (fieldLeft < 8) zipFail("entry " + name + " has a damaged zip64 extra field");
            *v = le64(field);
            field += 8;
            fieldLeft -= 8;
          }
          zip64 = true;
          break;
        }
        extra += 4 + fieldSize;
        remaining -= 4 + size_t(fieldSize);
      }
      if (!zip64) zipFail("entry " + name + " has 0xFFFFFFFF sizes or offset but no zip64 extra field");
    }

    if (startDisk == 0xFFFF || (startDisk != disk && startDisk != 1)) zipFail("multi-disk archives are not supported");
    if (flags & (0x0001 | 0x0040 | 0x2000)) zipFail("entry " + name + " is encrypted");
    if (method != 0)
      zipFail("entry " + name + " is compressed (method " + std::to_string(method) +
              "); torch.save stores every record uncompressed, and a compressed record's claimed size cannot be "
              "trusted before inflating it");
    if (compressed != uncompressed)
      zipFail("stored entry " + name + " claims " + std::to_string(uncompressed) + " bytes but holds " +
              std::to_string(compressed));

    // The local header: miniz finds the data after the local header's own name and extra field.
    if (local > size || kLocalSize > size - local)
      zipFail("entry " + name + " has its local header at byte " + std::to_string(local) + ", outside the " +
              std::to_string(size) + "-byte file");
    uint8_t header[kLocalSize];
    readOrFail(read, local, header, sizeof header, "local file header");
    if (le32(header) != kLocalSig) zipFail("entry " + name + " points at byte " + std::to_string(local) + ", which is not a local file header");
    const uint64_t dataOffset = local + kLocalSize + le16(header + 26) + le16(header + 28);
    if (dataOffset > size || compressed > size - dataOffset)
      zipFail("entry " + name + " claims " + std::to_string(compressed) + " bytes at byte " + std::to_string(dataOffset) +
              ", past the end of the " + std::to_string(size) + "-byte file");
    entry.localHeaderOffset = local;
    entry.dataOffset = dataOffset;
    entry.size = compressed;
    entry.crc32 = le32(p + 16);
    out.push_back(std::move(entry));
    pos += recordSize;
  }

  // No two names may be the same for miniz's lookup (which ignores ASCII case).
  std::vector<std::string> folded;
  folded.reserve(out.size());
  for (const ZipEntry& e : out) {
    std::string name = e.name;
    for (char& c : name) c = (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c;
    folded.push_back(std::move(name));
  }
  std::sort(folded.begin(), folded.end());
  for (size_t i = 1; i < folded.size(); ++i)
    if (folded[i] == folded[i - 1]) zipFail("two entries are named " + printable(folded[i]) + " (ignoring case)");

  // No two records may share bytes: otherwise a small file can name the same data thousands of
  // times, and every name is read (and allocated) separately.
  std::vector<const ZipEntry*> byOffset;
  byOffset.reserve(out.size());
  for (const ZipEntry& e : out) byOffset.push_back(&e);
  std::sort(byOffset.begin(), byOffset.end(),
            [](const ZipEntry* a, const ZipEntry* b) { return a->localHeaderOffset < b->localHeaderOffset; });
  for (size_t i = 1; i < byOffset.size(); ++i) {
    const ZipEntry& before = *byOffset[i - 1];
    if (byOffset[i]->localHeaderOffset < before.dataOffset + before.size)
      zipFail("entries " + printable(before.name) + " and " + printable(byOffset[i]->name) + " overlap");
  }
  return out;
}

uint32_t zipCrc32(const uint8_t* data, size_t size, uint32_t crc) {
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) {
    crc ^= data[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

std::vector<ZipEntry> checkZipArchive(const uint8_t* data, size_t size) {
  return checkZipArchive(size, [data, size](uint64_t offset, void* out, size_t n) {
    if (offset > size || n > size - offset) return false;
    if (n) std::memcpy(out, data + offset, n);
    return true;
  });
}

}  // namespace finetorch::formats
