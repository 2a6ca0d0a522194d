// Restricted reader and writer for the pickles inside torch.save files.
// No torch headers here on purpose: this code parses untrusted bytes, so it is kept small, pure
// C++ and buildable alone for fuzzing. Only the globals needed to rebuild tensors and containers
// are accepted (the torch.load(weights_only=True) promise); anything else is a FormatError that
// names the global. Objects of torch.nn / torchvision module classes (a whole pickled model) are
// read without running anything and come out as their state_dict (an ordered Dict of tensors);
// sets come out as lists.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace finetorch::formats {

enum class DType { Float32, Float64, Float16, BFloat16, Int64, Int32, Int16, Int8, UInt8, Bool };

size_t dtypeSize(DType dtype);
const char* dtypeName(DType dtype);  // "float32", "int64", ...

struct FormatError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A storage named by a torch persistent id: ('storage', torch.FloatStorage, key, location, numel).
struct StorageRef {
  std::string key;
  DType dtype = DType::Float32;
  std::string location = "cpu";
  int64_t numel = 0;
};

struct TensorRef {
  std::shared_ptr<StorageRef> storage;
  int64_t storageOffset = 0;  // in elements
  std::vector<int64_t> sizes;
  std::vector<int64_t> strides;  // in elements
  bool requiresGrad = false;
};

struct Value;
using ValuePtr = std::shared_ptr<Value>;

struct Value {
  enum class Kind { None, Bool, Int, Float, String, Bytes, List, Tuple, Dict, Tensor };
  Kind kind = Kind::None;
  bool boolean = false;
  int64_t integer = 0;
  double real = 0;
  std::string text;                                    // String (UTF-8) and Bytes
  std::vector<ValuePtr> items;                         // List, Tuple
  std::vector<std::pair<ValuePtr, ValuePtr>> entries;  // Dict, in insertion order
  bool ordered = false;                                // Dict: an OrderedDict
  TensorRef tensor;                                    // Tensor
};

struct Limits {
  size_t maxDepth = 1000;             // nesting of containers
  size_t maxStackItems = 1u << 24;    // values alive on the unpickler's stack and memo
  int64_t maxStorageBytes = int64_t(1) << 40;
  // Values in the result counting a shared subtree once per use: memo references can otherwise
  // build a small DAG that expands exponentially for whoever walks the tree.
  size_t maxTreeValues = 1u << 24;
  // ... and, per pickle, at most treeValuesBase + treeValuesPerByte * (bytes read so far): whoever
  // converts the tree makes an object for every value (a tensor view for every tensor use), so a
  // few hundred bytes must not expand into millions of them even below maxTreeValues.
  // treeValuesPerByte = 0 turns this bound off.
  size_t treeValuesBase = 1u << 16;
  size_t treeValuesPerByte = 4;
};

// Unpickles one pickle (protocols 0-5). Every failure is a FormatError with a message that says
// what was wrong and at which byte offset.
ValuePtr unpickle(const uint8_t* data, size_t size, const Limits& limits = {});

// The legacy (pre-1.6, non-zip) torch.save format held in memory: magic number, protocol, sys
// info, the main pickle, the list of storage keys, then each storage as an int64 count followed
// by its raw little-endian bytes. `storageOffsets` maps each key to the byte offset of its first
// element in `data`; every storage named by a tensor is checked to lie inside `data`.
struct LegacyFile {
  ValuePtr root;
  std::map<std::string, size_t> storageOffsets;
};
LegacyFile readLegacy(const uint8_t* data, size_t size, const Limits& limits = {});

// True when `data` starts like a zip archive (the format torch.save uses since 1.6).
bool looksLikeZip(const uint8_t* data, size_t size);

// Pickles `root` (protocol 2) the way torch.save does: tensors as
// torch._utils._rebuild_tensor_v2(persistent_id, offset, size, stride, requires_grad, OrderedDict())
// with persistent id ('storage', torch.<Type>Storage, key, location, numel) taken from each
// TensorRef's storage; dicts with `ordered` as collections.OrderedDict.
// Values nested deeper than limits.maxDepth, tensors without a storage, and strings over 4 GiB are
// a FormatError.
std::string pickle(const Value& root);
std::string pickle(const Value& root, const Limits& limits);

// Small constructors for building trees.
ValuePtr makeNone();
ValuePtr makeBool(bool v);
ValuePtr makeInt(int64_t v);
ValuePtr makeFloat(double v);
ValuePtr makeString(std::string v);
ValuePtr makeBytes(std::string v);
ValuePtr makeList(std::vector<ValuePtr> items);
ValuePtr makeTuple(std::vector<ValuePtr> items);
ValuePtr makeDict(std::vector<std::pair<ValuePtr, ValuePtr>> entries, bool ordered = false);
ValuePtr makeTensor(TensorRef tensor);

}  // namespace finetorch::formats
