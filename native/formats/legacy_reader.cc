// The legacy (pre-1.6, non-zip) torch.save format: the magic number, protocol version and sys info
// pickles, the main pickle, the storage key list, then each storage's raw bytes (see pickle.h).
#include <cstring>
#include <string>

#include "formats/pickle_internal.h"

namespace finetorch::formats {

namespace {

[[noreturn]] void legacyFail(size_t offset, const std::string& what) {
  throw FormatError("torch.save legacy file: at byte " + std::to_string(offset) + ": " + what);
}

// The magic number 0x1950a86a20f9469cfc6c is an 80-bit int, which the reader rightly rejects, so its
// one-value pickle is matched directly: [PROTO n] [FRAME len] (LONG1 10 bytes | LONG text) STOP.
size_t skipMagic(const uint8_t* data, size_t size) {
  static const uint8_t kLong1[] = {0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, '.'};
  static const char kText[] = "L119547037146038801333356L\n.";
  size_t pos = 0;
  if (size - pos >= 2 && data[pos] == 0x80) pos += 2;
  if (size - pos >= 9 && data[pos] == 0x95) pos += 9;
  if (size - pos >= sizeof kLong1 && std::memcmp(data + pos, kLong1, sizeof kLong1) == 0) return pos + sizeof kLong1;
  if (size - pos >= sizeof kText - 1 && std::memcmp(data + pos, kText, sizeof kText - 1) == 0)
    return pos + sizeof kText - 1;
  throw FormatError("not a torch.save file: bad magic number (at byte " + std::to_string(pos) + ")");
}

}  // namespace

LegacyFile readLegacy(const uint8_t* data, size_t size, const Limits& limits) {
  size_t pos = skipMagic(data, size);
  Parsed version = unpickleAt(data, size, pos, limits);
  if (version.root->kind != Value::Kind::Int || version.root->integer != 1001)
    legacyFail(pos, "unsupported protocol version (expected the int 1001)");
  pos = version.end;
  Parsed sysInfo = unpickleAt(data, size, pos, limits);
  bool littleEndian = false, found = false;
  if (sysInfo.root->kind == Value::Kind::Dict) {
    for (const auto& [k, v] : sysInfo.root->entries) {
      if (k->kind == Value::Kind::String && k->text == "little_endian" && v->kind == Value::Kind::Bool) {
        found = true;
        littleEndian = v->boolean;
      }
    }
  }
  if (!found) legacyFail(pos, "sys_info is not a dict with a bool 'little_endian'");
  if (!littleEndian) legacyFail(pos, "big-endian files are not supported");
  Parsed main = unpickleAt(data, size, sysInfo.end, limits);
  pos = main.end;
  Parsed keys = unpickleAt(data, size, pos, limits);
  if (keys.root->kind != Value::Kind::List) legacyFail(pos, "the storage key list is not a list");

  // Then, for each listed key: int64 element count, then the elements.
  LegacyFile file{main.root, {}};
  pos = keys.end;
  for (const ValuePtr& key : keys.root->items) {
    if (key->kind != Value::Kind::String) legacyFail(pos, "a storage key is not a str");
    auto storage = main.storages.find(key->text);
    if (storage == main.storages.end())
      legacyFail(pos, "storage " + quoted(key->text) + " is listed but no tensor uses it");
    if (file.storageOffsets.count(key->text)) legacyFail(pos, "storage " + quoted(key->text) + " is listed twice");
    if (size - pos < 8) legacyFail(pos, "truncated: storage " + quoted(key->text) + " has no element count");
    uint64_t raw = 0;
    for (size_t i = 8; i-- > 0;) raw = raw << 8 | data[pos + i];
    const StorageRef& s = *storage->second;
    if (raw != uint64_t(s.numel))
      legacyFail(pos, "storage " + quoted(key->text) + " holds " + std::to_string(int64_t(raw)) +
                          " elements but its tensors were saved with " + std::to_string(s.numel));
    pos += 8;
    // numel * element size was checked against overflow and maxStorageBytes by the unpickler.
    uint64_t bytes = uint64_t(s.numel) * dtypeSize(s.dtype);
    if (bytes > size - pos)
      legacyFail(pos, "truncated: storage " + quoted(key->text) + " needs " + std::to_string(bytes) +
                          " bytes but only " +
                          std::to_string(size - pos) + " remain");
    file.storageOffsets[key->text] = pos;
    pos += size_t(bytes);
  }
  for (const auto& [key, storage] : main.storages)
    if (!file.storageOffsets.count(key))
      legacyFail(pos, "storage " + quoted(key) + " used by a tensor is missing from the storage list");
  return file;
}

}  // namespace finetorch::formats
