// Restricted unpickler for torch.save payloads (see pickle.h for the contract).
// One file on purpose (~1150 lines): the opcode loop, its value model and the limits it checks are
// one state machine, and a reviewer auditing it for untrusted input should read it in one place.
// The legacy (pre-1.6) container around it is in legacy_reader.cc.
//
// How untrusted input is kept in check:
//  * One loop over opcodes with an explicit stack: nothing recurses on input structure.
//  * Every length is compared with the bytes left before anything is allocated.
//  * Each container pushed by the unpickler carries a Meta (nesting depth, values below it), so
//    nesting is bounded by Limits.maxDepth and memo-shared subtrees cannot form a tree that
//    expands exponentially (Limits.maxTreeValues).
//  * A container can only be changed until it is placed inside another one ("sealed"). Python's
//    pickler always finishes a container before its parent takes it, and the rule makes reference
//    cycles impossible (they would leak shared_ptrs and make every tree walk loop forever).
//  * Opcodes that walk a value they did not create (REDUCE arguments fetched from the memo, dict
//    keys hashed again and again) charge a work budget proportional to the input size, so memo
//    references cannot turn a small file into quadratic time or memory.
//
// Whole pickled models (torch.save(model)): classes under torch.nn.modules., torchvision.models.
// and torchvision.ops. (plus DataParallel) are inert stand-ins. NEWOBJ (or REDUCE with no
// arguments, or copyreg._reconstructor) makes an object record and BUILD hands it its __dict__;
// no class code runs. When BUILD sets the state, the record becomes the module's state_dict the
// way nn.Module.state_dict() lays it out (own parameters, persistent buffers, then each child
// under "name."), and wherever the object is used as data it is that OrderedDict of tensors.
// Children are finished before their parent takes them, so each BUILD only prefixes its children's
// already flat dicts (charged to the work budget).

#include "formats/pickle_internal.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace finetorch::formats {

size_t dtypeSize(DType dtype) {
  switch (dtype) {
    case DType::Float64: case DType::Int64: return 8;
    case DType::Float32: case DType::Int32: return 4;
    case DType::Float16: case DType::BFloat16: case DType::Int16: return 2;
    case DType::Int8: case DType::UInt8: case DType::Bool: return 1;
  }
  return 1;
}

const char* dtypeName(DType dtype) {
  switch (dtype) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Float16: return "float16";
    case DType::BFloat16: return "bfloat16";
    case DType::Int64: return "int64";
    case DType::Int32: return "int32";
    case DType::Int16: return "int16";
    case DType::Int8: return "int8";
    case DType::UInt8: return "uint8";
    case DType::Bool: return "bool";
  }
  return "?";
}

namespace {

ValuePtr newValue(Value::Kind kind) {
  auto v = std::make_shared<Value>();
  v->kind = kind;
  return v;
}

}  // namespace

ValuePtr makeNone() { return newValue(Value::Kind::None); }
ValuePtr makeBool(bool v) { auto r = newValue(Value::Kind::Bool); r->boolean = v; return r; }
ValuePtr makeInt(int64_t v) { auto r = newValue(Value::Kind::Int); r->integer = v; return r; }
ValuePtr makeFloat(double v) { auto r = newValue(Value::Kind::Float); r->real = v; return r; }
ValuePtr makeString(std::string v) { auto r = newValue(Value::Kind::String); r->text = std::move(v); return r; }
ValuePtr makeBytes(std::string v) { auto r = newValue(Value::Kind::Bytes); r->text = std::move(v); return r; }
ValuePtr makeList(std::vector<ValuePtr> items) {
  auto r = newValue(Value::Kind::List);
  r->items = std::move(items);
  return r;
}
ValuePtr makeTuple(std::vector<ValuePtr> items) {
  auto r = newValue(Value::Kind::Tuple);
  r->items = std::move(items);
  return r;
}
ValuePtr makeDict(std::vector<std::pair<ValuePtr, ValuePtr>> entries, bool ordered) {
  auto r = newValue(Value::Kind::Dict);
  r->entries = std::move(entries);
  r->ordered = ordered;
  return r;
}
ValuePtr makeTensor(TensorRef tensor) {
  auto r = newValue(Value::Kind::Tensor);
  r->tensor = std::move(tensor);
  return r;
}

bool looksLikeZip(const uint8_t* data, size_t size) {
  return size >= 4 && std::memcmp(data, "PK\x03\x04", 4) == 0;
}

namespace {

constexpr size_t kMaxRawTupleItems = 16;

// What every refusal of a pickled object says to do about it.
constexpr const char* kResave =
    "If this file holds a whole pickled model, re-save its weights with torch.save(model.state_dict(), path)";  // persistent ids and REDUCE arguments are shorter

const char* opcodeName(int op) {
  static const std::pair<int, const char*> kNames[] = {
      {'(', "MARK"}, {'.', "STOP"}, {'0', "POP"}, {'1', "POP_MARK"}, {'2', "DUP"}, {'F', "FLOAT"}, {'I', "INT"},
      {'J', "BININT"}, {'K', "BININT1"}, {'L', "LONG"}, {'M', "BININT2"}, {'N', "NONE"}, {'P', "PERSID"},
      {'Q', "BINPERSID"}, {'R', "REDUCE"}, {'S', "STRING"}, {'T', "BINSTRING"}, {'U', "SHORT_BINSTRING"},
      {'V', "UNICODE"}, {'X', "BINUNICODE"}, {'a', "APPEND"}, {'b', "BUILD"}, {'c', "GLOBAL"}, {'d', "DICT"},
      {'}', "EMPTY_DICT"}, {'e', "APPENDS"}, {'g', "GET"}, {'h', "BINGET"}, {'i', "INST"}, {'j', "LONG_BINGET"},
      {'l', "LIST"}, {']', "EMPTY_LIST"}, {'o', "OBJ"}, {'p', "PUT"}, {'q', "BINPUT"}, {'r', "LONG_BINPUT"},
      {'s', "SETITEM"}, {'t', "TUPLE"}, {')', "EMPTY_TUPLE"}, {'u', "SETITEMS"}, {'G', "BINFLOAT"},
      {'B', "BINBYTES"}, {'C', "SHORT_BINBYTES"}, {0x80, "PROTO"}, {0x81, "NEWOBJ"}, {0x82, "EXT1"},
      {0x83, "EXT2"}, {0x84, "EXT4"}, {0x85, "TUPLE1"}, {0x86, "TUPLE2"}, {0x87, "TUPLE3"}, {0x88, "NEWTRUE"},
      {0x89, "NEWFALSE"}, {0x8a, "LONG1"}, {0x8b, "LONG4"}, {0x8c, "SHORT_BINUNICODE"}, {0x8d, "BINUNICODE8"},
      {0x8e, "BINBYTES8"}, {0x8f, "EMPTY_SET"}, {0x90, "ADDITEMS"}, {0x91, "FROZENSET"}, {0x92, "NEWOBJ_EX"},
      {0x93, "STACK_GLOBAL"}, {0x94, "MEMOIZE"}, {0x95, "FRAME"}, {0x96, "BYTEARRAY8"}, {0x97, "NEXT_BUFFER"},
      {0x98, "READONLY_BUFFER"}};
  for (const auto& [code, name] : kNames)
    if (code == op) return name;
  return "unknown";
}

const char* kindName(Value::Kind kind) {
  switch (kind) {
    case Value::Kind::None: return "None";
    case Value::Kind::Bool: return "bool";
    case Value::Kind::Int: return "int";
    case Value::Kind::Float: return "float";
    case Value::Kind::String: return "str";
    case Value::Kind::Bytes: return "bytes";
    case Value::Kind::List: return "list";
    case Value::Kind::Tuple: return "tuple";
    case Value::Kind::Dict: return "dict";
    case Value::Kind::Tensor: return "tensor";
  }
  return "?";
}

}  // namespace

// For error messages: printable ASCII as is, anything else escaped, long text cut short.
std::string quoted(std::string_view s) {
  std::string out = "'";
  for (size_t i = 0; i < s.size() && i < 80; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out + (s.size() > 80 ? "'..." : "'");
}

namespace {

// Decodes one UTF-8 sequence at s[i]. Surrogate code points are let through because Python
// pickles lone surrogates with 'surrogatepass'.
bool nextCodePoint(std::string_view s, size_t& i, uint32_t& cp) {
  static const uint32_t kMinForLength[] = {0, 0x80, 0x800, 0x10000};
  uint8_t c = static_cast<uint8_t>(s[i]);
  size_t extra;
  if (c < 0x80) { cp = c; ++i; return true; }
  if ((c & 0xE0) == 0xC0) { extra = 1; cp = c & 0x1F; }
  else if ((c & 0xF0) == 0xE0) { extra = 2; cp = c & 0x0F; }
  else if ((c & 0xF8) == 0xF0) { extra = 3; cp = c & 0x07; }
  else return false;
  if (extra > s.size() - i - 1) return false;
  for (size_t k = 1; k <= extra; ++k) {
    uint8_t cc = static_cast<uint8_t>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return false;
    cp = cp << 6 | (cc & 0x3F);
  }
  if (cp < kMinForLength[extra] || cp > 0x10FFFF) return false;
  i += extra + 1;
  return true;
}

bool isUtf8(std::string_view s) {
  uint32_t cp;
  for (size_t i = 0; i < s.size();)
    if (!nextCodePoint(s, i, cp)) return false;
  return true;
}

void appendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) { out += char(cp); return; }
  if (cp < 0x800) { out += char(0xC0 | cp >> 6); }
  else if (cp < 0x10000) { out += char(0xE0 | cp >> 12); out += char(0x80 | (cp >> 6 & 0x3F)); }
  else { out += char(0xF0 | cp >> 18); out += char(0x80 | (cp >> 12 & 0x3F)); out += char(0x80 | (cp >> 6 & 0x3F)); }
  out += char(0x80 | (cp & 0x3F));
}

int hexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool parseDecimal(std::string_view s, int64_t& out) {
  bool negative = !s.empty() && s[0] == '-';
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) s.remove_prefix(1);
  if (s.empty()) return false;
  uint64_t magnitude = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    uint64_t digit = uint64_t(c - '0');
    if (magnitude > (UINT64_MAX - digit) / 10) return false;
    magnitude = magnitude * 10 + digit;
  }
  const uint64_t limit = uint64_t(INT64_MAX) + (negative ? 1 : 0);
  if (magnitude > limit) return false;
  out = negative ? int64_t(0 - magnitude) : int64_t(magnitude);  // 0 - m wraps to -m, also for INT64_MIN
  return true;
}

enum class Global { OrderedDict, RebuildTensorV2, RebuildTensor, RebuildParameter, RebuildParameterWithState,
                    TorchSize, CodecsEncode, EmptyBytes, StorageType, Set, Reconstructor, Object, ModuleClass };

// The allowlist. Storage types are not callable: they only name a dtype inside persistent ids.
struct AllowedGlobal {
  const char* module;
  const char* name;
  Global global;
  DType dtype;
};
constexpr AllowedGlobal kAllowedGlobals[] = {
    {"collections", "OrderedDict", Global::OrderedDict, {}},
    {"torch._utils", "_rebuild_tensor_v2", Global::RebuildTensorV2, {}},
    {"torch._utils", "_rebuild_tensor", Global::RebuildTensor, {}},
    {"torch._utils", "_rebuild_parameter", Global::RebuildParameter, {}},
    {"torch._utils", "_rebuild_parameter_with_state", Global::RebuildParameterWithState, {}},
    {"torch", "Size", Global::TorchSize, {}},
    {"_codecs", "encode", Global::CodecsEncode, {}},   // bytes, protocols < 3
    {"__builtin__", "bytes", Global::EmptyBytes, {}},  // b'', protocols < 3
    {"builtins", "bytes", Global::EmptyBytes, {}},
    // Sets (a module's _non_persistent_buffers_set) are read as lists.
    {"__builtin__", "set", Global::Set, {}},
    {"builtins", "set", Global::Set, {}},
    {"__builtin__", "frozenset", Global::Set, {}},
    {"builtins", "frozenset", Global::Set, {}},
    // Protocols 0 and 1 make a module object with copyreg._reconstructor(cls, object, None).
    {"copy_reg", "_reconstructor", Global::Reconstructor, {}},
    {"copyreg", "_reconstructor", Global::Reconstructor, {}},
    {"__builtin__", "object", Global::Object, {}},
    {"builtins", "object", Global::Object, {}},
    {"torch", "FloatStorage", Global::StorageType, DType::Float32},
    {"torch", "DoubleStorage", Global::StorageType, DType::Float64},
    {"torch", "HalfStorage", Global::StorageType, DType::Float16},
    {"torch", "BFloat16Storage", Global::StorageType, DType::BFloat16},
    {"torch", "LongStorage", Global::StorageType, DType::Int64},
    {"torch", "IntStorage", Global::StorageType, DType::Int32},
    {"torch", "ShortStorage", Global::StorageType, DType::Int16},
    {"torch", "CharStorage", Global::StorageType, DType::Int8},
    {"torch", "ByteStorage", Global::StorageType, DType::UInt8},
    {"torch", "BoolStorage", Global::StorageType, DType::Bool}};

// The module classes read as inert objects: any CamelCase name under these modules, and DataParallel.
constexpr const char* kModulePrefixes[] = {"torch.nn.modules.", "torchvision.models.", "torchvision.ops."};

bool isIdentifier(std::string_view s) {
  if (s.empty() || s.size() > 100 || (s[0] >= '0' && s[0] <= '9')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

bool isModuleClass(std::string_view module, std::string_view name) {
  if (module == "torch.nn.parallel.data_parallel" && name == "DataParallel") return true;
  if (!isIdentifier(name) || name[0] < 'A' || name[0] > 'Z') return false;
  for (std::string_view prefix : kModulePrefixes) {
    if (module.size() <= prefix.size() || module.substr(0, prefix.size()) != prefix) continue;
    std::string_view rest = module.substr(prefix.size());
    for (size_t start = 0;;) {  // dotted identifiers
      size_t dot = rest.find('.', start);
      if (!isIdentifier(rest.substr(start, dot == std::string_view::npos ? dot : dot - start))) return false;
      if (dot == std::string_view::npos) return true;
      start = dot + 1;
    }
  }
  return false;
}

// What Item::global points to for every module class; the class's name is in Item::value.
constexpr AllowedGlobal kModuleClassGlobal = {"", "", Global::ModuleClass, {}};

// An object of an allowed module class: the class, then its state_dict once BUILD has set its state.
struct ModuleObject {
  std::string className;
  ValuePtr stateDict;
};

// Bookkeeping for a container the unpickler built (see the top of the file).
struct Meta {
  size_t depth = 1;        // containers on the longest path down, this one included
  uint64_t values = 1;     // values in the subtree, a shared subtree counted at each use
  bool sealed = false;     // placed inside another container: no more changes
  std::unordered_map<std::string, size_t> keyIndex;  // Dict: encoded key -> index in entries
};

// One slot of the unpickler's stack or memo. Globals, storages and tuples holding them are not
// data: they only exist to be consumed by REDUCE / NEWOBJ / BINPERSID. A module class used as data
// (ResNet keeps its norm layer class) reads as its dotted name; a module object as its state_dict.
struct Item {
  enum class Kind { Value, Global, Storage, RawTuple, Object };
  Kind kind = Kind::Value;
  ValuePtr value;              // Value; Global of a module class: its dotted name
  std::shared_ptr<Meta> meta;  // Value containers the unpickler built; Object: shared by its copies
  const AllowedGlobal* global = nullptr;
  std::shared_ptr<ModuleObject> object;
  std::shared_ptr<StorageRef> storage;
  std::shared_ptr<const std::vector<Item>> parts;  // RawTuple: a tuple holding a global or storage
};

// Python numbers memo entries 0, 1, 2, ... in order: those live in a vector, any others in a map.
class Memo {
 public:
  size_t size() const { return dense_.size() + sparse_.size(); }
  const Item* find(uint64_t i) const {
    if (i < dense_.size()) return &dense_[size_t(i)];
    auto it = sparse_.find(i);
    return it == sparse_.end() ? nullptr : &it->second;
  }
  void put(uint64_t i, const Item& item) {
    if (i < dense_.size()) dense_[size_t(i)] = item;
    else if (i == dense_.size() && sparse_.empty()) dense_.push_back(item);
    else sparse_[i] = item;
  }

 private:
  std::vector<Item> dense_;
  std::unordered_map<uint64_t, Item> sparse_;
};

class Unpickler {
 public:
  Unpickler(const uint8_t* data, size_t size, size_t start, const Limits& limits)
      : data_(data), size_(size), start_(start), pos_(start), limits_(limits),
        workLeft_(16 * uint64_t(size - start) + (uint64_t(1) << 20)) {
    stack_.reserve(256);
  }

  ValuePtr run();
  size_t end() const { return pos_; }
  std::map<std::string, std::shared_ptr<StorageRef>>& storages() { return storages_; }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    char where[96];
    if (op_ < 0) std::snprintf(where, sizeof where, "pickle: at byte %zu: ", opStart_);
    else std::snprintf(where, sizeof where, "pickle: opcode 0x%02x (%s) at byte %zu: ", op_, opcodeName(op_),
                       opStart_);
    throw FormatError(where + what);
  }
  void charge(uint64_t units) {
    if (units > workLeft_) fail("too much work for the size of the input (memo references amplify it)");
    workLeft_ -= units;
  }

  // Input.
  const uint8_t* take(uint64_t n) {
    if (n > size_ - pos_)
      fail("truncated: needs " + std::to_string(n) + " bytes but only " + std::to_string(size_ - pos_) + " remain");
    const uint8_t* p = data_ + pos_;
    pos_ += size_t(n);
    return p;
  }
  uint64_t readLE(size_t n) {
    const uint8_t* p = take(n);
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;) v = v << 8 | p[i];
    return v;
  }
  std::string_view readText(uint64_t n) {
    const uint8_t* p = take(n);
    return {reinterpret_cast<const char*>(p), size_t(n)};
  }
  std::string_view readLine() {
    const void* nl = pos_ < size_ ? std::memchr(data_ + pos_, '\n', size_ - pos_) : nullptr;
    if (!nl) fail("truncated: the text argument has no end of line");
    std::string_view line = readText(size_t(static_cast<const uint8_t*>(nl) - (data_ + pos_)));
    ++pos_;
    return line;
  }
  uint64_t readIndexLine() {
    int64_t v;
    std::string_view line = readLine();
    if (!parseDecimal(line, v) || v < 0) fail("bad memo index " + quoted(line));
    return uint64_t(v);
  }

  // Stack.
  size_t markBase() const { return marks_.empty() ? 0 : marks_.back(); }
  void checkRoom() {
    if (stack_.size() + memo_.size() >= limits_.maxStackItems)
      fail("more than maxStackItems (" + std::to_string(limits_.maxStackItems) + ") values on the stack and memo");
  }
  void push(Item item) {
    checkRoom();
    stack_.push_back(std::move(item));
  }
  Item& top() {
    if (stack_.size() <= markBase()) fail("stack underflow");
    return stack_.back();
  }
  Item pop() { Item item = std::move(top()); stack_.pop_back(); return item; }
  // Pops the topmost MARK. The items above it stay at stack_[returned index, end) for the caller
  // to consume and then drop with dropFrom().
  size_t popMark() {
    if (marks_.empty()) fail("no MARK to pop to");
    size_t base = marks_.back();
    marks_.pop_back();
    return base;
  }
  void dropFrom(size_t base) { stack_.erase(stack_.begin() + long(base), stack_.end()); }
  // LIST and DICT: puts a new container below the items above a MARK; returns the items' new start.
  size_t insertContainer(size_t base, Value::Kind kind) {
    checkRoom();
    stack_.insert(stack_.begin() + long(base), container(kind));
    return base + 1;
  }

  // Values.
  static Item data(ValuePtr v) { Item it; it.value = std::move(v); return it; }
  static Item container(Value::Kind kind) {
    Item it = data(newValue(kind));
    it.meta = std::make_shared<Meta>();
    return it;
  }
  const ValuePtr& dataOf(const Item& it, const char* role) const {
    if (it.kind == Item::Kind::Value) return it.value;
    if (it.kind == Item::Kind::Global && it.global->global == Global::ModuleClass) return it.value;
    if (it.kind == Item::Kind::Object) {
      if (!it.object->stateDict)
        fail("a " + it.object->className + " object is used before BUILD set its state (as " + role +
             "; reference cycles are not supported)");
      return it.object->stateDict;
    }
    const char* what = it.kind == Item::Kind::Global    ? "a global"
                       : it.kind == Item::Kind::Storage ? "a storage"
                                                        : "a tuple holding a global or storage";
    fail(std::string(what) + " cannot be used as " + role);
  }
  void pushText(std::string_view text, const char* opname) {
    if (!isUtf8(text)) fail(std::string(opname) + " text is not valid UTF-8");
    push(data(makeString(std::string(text))));
  }
  void adopt(Meta& parent, const Item& child) {
    size_t childDepth = child.meta ? child.meta->depth : 0;
    if (childDepth + 1 > limits_.maxDepth)
      fail("containers nested deeper than the limit of " + std::to_string(limits_.maxDepth));
    parent.depth = std::max(parent.depth, childDepth + 1);
    parent.values += child.meta ? child.meta->values : 1;
    if (parent.values > limits_.maxTreeValues)
      fail("more than maxTreeValues (" + std::to_string(limits_.maxTreeValues) +
           ") values in the tree, counting shared parts at each use");
    if (limits_.treeValuesPerByte) {
      const uint64_t read = pos_ - start_;
      uint64_t allowed;
      if (__builtin_mul_overflow(read, uint64_t(limits_.treeValuesPerByte), &allowed) ||
          __builtin_add_overflow(allowed, uint64_t(limits_.treeValuesBase), &allowed))
        allowed = UINT64_MAX;
      if (parent.values > allowed)
        fail("more than " + std::to_string(allowed) + " values in the tree from " + std::to_string(read) +
             " bytes of pickle (maxTreeValues: treeValuesBase + treeValuesPerByte per byte), counting shared "
             "parts at each use");
    }
    if (child.meta) child.meta->sealed = true;
  }
  Meta& editable(Item& target, Value::Kind kind, const char* opname) {
    if (target.kind != Item::Kind::Value || target.value->kind != kind || !target.meta)
      fail(std::string(opname) + " needs a " + kindName(kind) + " below its arguments");
    if (target.meta->sealed)
      fail(std::string("cannot change a ") + kindName(kind) +
           " after it was placed inside another container (reference cycles are not supported)");
    return *target.meta;
  }
  void appendTo(Item& list, const Item& child) {
    Meta& meta = editable(list, Value::Kind::List, "APPEND");
    const ValuePtr& v = dataOf(child, "a list item");
    if (v == list.value) fail("a list cannot contain itself");
    adopt(meta, child);
    list.value->items.push_back(v);
  }
  void setItem(Item& dict, const Item& key, const Item& value) {
    Meta& meta = editable(dict, Value::Kind::Dict, "SETITEM");
    const ValuePtr& k = dataOf(key, "a dict key");
    const ValuePtr& v = dataOf(value, "a dict value");
    if (v == dict.value) fail("a dict cannot contain itself");
    std::string indexKey;
    if (k->kind == Value::Kind::String) { charge(k->text.size()); indexKey = "s" + k->text; }
    else if (k->kind == Value::Kind::Int) indexKey = "i" + std::to_string(k->integer);
    else fail(std::string("dict keys must be str or int, got ") + kindName(k->kind));
    adopt(meta, key);
    adopt(meta, value);
    auto [slot, inserted] = meta.keyIndex.emplace(std::move(indexKey), dict.value->entries.size());
    if (inserted) dict.value->entries.emplace_back(k, v);
    else dict.value->entries[slot->second].second = v;  // like Python: the last value wins
  }
  // Replaces stack_[base, end) with one tuple made of those items.
  void tupleFrom(size_t base) {
    auto begin = stack_.begin() + long(base), end = stack_.end();
    Item tuple;
    if (std::all_of(begin, end, [](const Item& it) { return it.kind == Item::Kind::Value || it.kind == Item::Kind::Object; })) {
      tuple = container(Value::Kind::Tuple);
      tuple.value->items.reserve(size_t(end - begin));
      for (auto it = begin; it != end; ++it) {
        const ValuePtr& v = dataOf(*it, "a tuple item");
        adopt(*tuple.meta, *it);
        tuple.value->items.push_back(v);
      }
    } else {
      if (end - begin > long(kMaxRawTupleItems)) fail("a tuple holding a global or storage may have at most 16 items");
      if (std::any_of(begin, end, [](const Item& it) { return it.kind == Item::Kind::RawTuple; }))
        fail("nested tuples holding globals or storages are not supported");
      tuple.kind = Item::Kind::RawTuple;
      tuple.parts =
          std::make_shared<const std::vector<Item>>(std::make_move_iterator(begin), std::make_move_iterator(end));
    }
    dropFrom(base);
    push(std::move(tuple));
  }

  // Argument checks for the allowed callables.
  const Value& valueArg(const Item& it, Value::Kind kind, const char* role) {
    if (it.kind != Item::Kind::Value || it.value->kind != kind)
      fail(std::string(role) + " must be a " + kindName(kind));
    return *it.value;
  }
  std::vector<int64_t> intsArg(const Item& it, const char* role) {
    if (it.kind != Item::Kind::Value || (it.value->kind != Value::Kind::Tuple && it.value->kind != Value::Kind::List))
      fail(std::string(role) + " must be a tuple of ints");
    charge(it.value->items.size());
    std::vector<int64_t> out;
    for (const ValuePtr& v : it.value->items) {
      if (v->kind != Value::Kind::Int) fail(std::string(role) + " must be a tuple of ints");
      out.push_back(v->integer);
    }
    return out;
  }
  std::vector<Item> argsOf(const Item& args) {
    if (args.kind == Item::Kind::RawTuple) return *args.parts;
    if (args.kind != Item::Kind::Value || args.value->kind != Value::Kind::Tuple) fail("the arguments must be a tuple");
    charge(args.value->items.size());
    std::vector<Item> out;
    for (const ValuePtr& v : args.value->items) out.push_back(data(v));
    return out;
  }

  Item resolveGlobal(std::string_view module, std::string_view name);
  Item call(const Item& callable, const Item& args, bool isNewObj);
  Item newModule(const Item& cls);
  void buildModule(Item& target, const Item& state);
  ValuePtr moduleStateDict(const ModuleObject& object, const Value& state);
  Item set(const std::vector<Item>& a, const Item& args);
  Item orderedDict(const std::vector<Item>& a, const Item& args);
  Item rebuildTensor(const std::vector<Item>& a, bool v2);
  Item rebuildParameter(const std::vector<Item>& a, bool withState);
  Item persistentLoad(const Item& pid);
  void checkTensor(const TensorRef& t);

  const uint8_t* data_;
  size_t size_;
  size_t start_;
  size_t pos_;
  const Limits& limits_;
  uint64_t workLeft_;
  size_t opStart_ = 0;
  int op_ = -1;
  std::vector<Item> stack_;
  std::vector<size_t> marks_;  // stack sizes at each MARK
  Memo memo_;
  std::map<std::string, std::shared_ptr<StorageRef>> storages_;
  std::unordered_set<const Value*> moduleStateDicts_;  // the state_dicts BUILD made from module objects
};

Item Unpickler::resolveGlobal(std::string_view module, std::string_view name) {
  for (const AllowedGlobal& allowed : kAllowedGlobals) {
    if (module == allowed.module && name == allowed.name) {
      Item g;
      g.kind = Item::Kind::Global;
      g.global = &allowed;
      return g;
    }
  }
  if (isModuleClass(module, name)) {
    Item g;
    g.kind = Item::Kind::Global;
    g.global = &kModuleClassGlobal;
    g.value = makeString(std::string(module) + "." + std::string(name));
    return g;
  }
  fail("global " + quoted(std::string(module) + "." + std::string(name)) +
       " is not allowed (only torch tensor/storage rebuilders, collections.OrderedDict and torch.nn / torchvision "
       "module classes are accepted; nothing from the file is run). " + kResave);
}

Item Unpickler::newModule(const Item& cls) {
  checkRoom();
  Item it;
  it.kind = Item::Kind::Object;
  it.object = std::make_shared<ModuleObject>();
  it.object->className = cls.value->text;
  it.meta = std::make_shared<Meta>();
  return it;
}

void Unpickler::buildModule(Item& target, const Item& state) {
  ModuleObject& object = *target.object;
  if (object.stateDict) fail("BUILD twice on one " + object.className + " object");
  const ValuePtr& s = dataOf(state, "module state");
  if (s->kind != Value::Kind::Dict) fail("the state of a " + object.className + " object must be a dict");
  if (state.meta) state.meta->sealed = true;  // what was read is what the state_dict is made of
  object.stateDict = moduleStateDict(object, *s);
  moduleStateDicts_.insert(object.stateDict.get());
  // Every copy of the object (stack, memo) shares this Meta: a dict of tensors, two levels deep.
  target.meta->depth = 2;
  target.meta->values = 1 + 2 * uint64_t(object.stateDict->entries.size());
}

// nn.Module.state_dict(): parameters, then buffers not in _non_persistent_buffers_set (None entries
// skipped), then each child module's entries under "child.", in insertion order; tensors detached.
ValuePtr Unpickler::moduleStateDict(const ModuleObject& object, const Value& state) {
  const std::string& cls = object.className;
  const Value *parameters = nullptr, *buffers = nullptr, *modules = nullptr, *nonPersistent = nullptr;
  for (const auto& [k, v] : state.entries) {
    if (k->kind != Value::Kind::String) continue;
    if (k->text == "_parameters") parameters = v.get();
    else if (k->text == "_buffers") buffers = v.get();
    else if (k->text == "_modules") modules = v.get();
    else if (k->text == "_non_persistent_buffers_set") nonPersistent = v.get();
  }
  const std::pair<const Value*, const char*> required[] = {
      {parameters, "_parameters"}, {buffers, "_buffers"}, {modules, "_modules"}};
  for (auto [field, name] : required) {
    if (!field) fail("the state of a " + cls + " object has no '" + name + "': not a torch.nn.Module");
    if (field->kind != Value::Kind::Dict) fail("'" + std::string(name) + "' of a " + cls + " object must be a dict");
  }
  std::unordered_set<std::string> skipped;
  if (nonPersistent && nonPersistent->kind != Value::Kind::None) {
    if (nonPersistent->kind != Value::Kind::List && nonPersistent->kind != Value::Kind::Tuple)
      fail("'_non_persistent_buffers_set' of a " + cls + " object must be a set");
    charge(nonPersistent->items.size());
    for (const ValuePtr& name : nonPersistent->items) {
      if (name->kind != Value::Kind::String) fail("'_non_persistent_buffers_set' of a " + cls + " object holds a non-str");
      charge(name->text.size());
      skipped.insert(name->text);
    }
  }
  std::vector<std::pair<ValuePtr, ValuePtr>> entries;
  std::unordered_map<std::string, size_t> index;
  auto add = [&](std::string key, const ValuePtr& tensor) {
    charge(key.size() + 1);
    auto [slot, inserted] = index.emplace(key, entries.size());
    if (inserted) entries.emplace_back(makeString(std::move(key)), tensor);
    else entries[slot->second].second = tensor;  // like assigning into the OrderedDict
  };
  auto keyOf = [&](const ValuePtr& k, const char* field) -> const std::string& {
    if (k->kind != Value::Kind::String) fail(std::string("a key of '") + field + "' of a " + cls + " object is not a str");
    return k->text;
  };
  for (const Value* field : {parameters, buffers}) {
    const char* fieldName = field == parameters ? "_parameters" : "_buffers";
    for (const auto& [k, v] : field->entries) {
      const std::string& name = keyOf(k, fieldName);
      if (v->kind == Value::Kind::None || (field == buffers && skipped.count(name))) continue;
      if (v->kind != Value::Kind::Tensor)
        fail(std::string(fieldName) + "[" + quoted(name) + "] of a " + cls + " object is a " + kindName(v->kind) +
             ", not a tensor");
      TensorRef detached = v->tensor;  // state_dict() holds detached tensors
      detached.requiresGrad = false;
      add(name, makeTensor(std::move(detached)));
    }
  }
  for (const auto& [k, child] : modules->entries) {
    const std::string& name = keyOf(k, "_modules");
    if (child->kind == Value::Kind::None) continue;
    if (!moduleStateDicts_.count(child.get()))
      fail("_modules[" + quoted(name) + "] of a " + cls + " object is not a module object");
    charge(child->entries.size());
    for (const auto& [childKey, tensor] : child->entries) add(name + "." + childKey->text, tensor);
  }
  return makeDict(std::move(entries), true);
}

Item Unpickler::set(const std::vector<Item>& a, const Item& args) {
  Item list = container(Value::Kind::List);
  if (a.empty()) return list;
  if (a.size() != 1 || a[0].kind != Item::Kind::Value ||
      (a[0].value->kind != Value::Kind::List && a[0].value->kind != Value::Kind::Tuple))
    fail("set takes () or one list");
  charge(a[0].value->items.size());
  for (const ValuePtr& v : a[0].value->items) appendTo(list, data(v));
  // The items came out of `args` without their Meta; its figures bound the new list's.
  if (args.meta) {
    list.meta->depth = std::max(list.meta->depth, args.meta->depth);
    list.meta->values = std::max(list.meta->values, args.meta->values);
  }
  return list;
}

Item Unpickler::call(const Item& callable, const Item& args, bool isNewObj) {
  if (callable.kind != Item::Kind::Global) fail("the callable below the arguments must be an allowed global");
  std::vector<Item> a = argsOf(args);
  const Global g = callable.global->global;
  const std::string name = g == Global::ModuleClass ? callable.value->text
                                                    : std::string(callable.global->module) + "." + callable.global->name;
  if (isNewObj && g != Global::OrderedDict && g != Global::TorchSize && g != Global::ModuleClass)
    fail("NEWOBJ of " + name + " is not allowed");
  switch (g) {
    case Global::ModuleClass:
      // What torch.save writes for a module: cls.__new__(cls), then BUILD. Anything else would
      // need the class's own code.
      if (!a.empty())
        fail(name + " is only read as torch.save pickles a module (created without arguments, then its state). " +
             kResave);
      return newModule(callable);
    case Global::Reconstructor:
      if (a.size() != 3 || a[0].kind != Item::Kind::Global || a[0].global->global != Global::ModuleClass ||
          a[1].kind != Item::Kind::Global || a[1].global->global != Global::Object || a[2].kind != Item::Kind::Value ||
          a[2].value->kind != Value::Kind::None)
        fail(name + " is only accepted as (module class, object, None). " + kResave);
      return newModule(a[0]);
    case Global::Object: break;
    case Global::Set: return set(a, args);
    case Global::OrderedDict: return orderedDict(a, args);
    case Global::TorchSize: {
      if (a.empty()) return container(Value::Kind::Tuple);
      if (a.size() != 1) fail("torch.Size takes one tuple of ints");
      Item sizes = container(Value::Kind::Tuple);
      sizes.value->items = valueArg(a[0], Value::Kind::Tuple, "the argument of torch.Size").items;
      std::vector<int64_t> checked = intsArg(sizes, "the argument of torch.Size");
      sizes.meta->values += checked.size();
      return sizes;
    }
    case Global::CodecsEncode: {
      // Protocol 2 pickles bytes as _codecs.encode(<bytes as latin-1 text>, 'latin1').
      if (a.size() != 2) fail("_codecs.encode takes (text, 'latin1')");
      const std::string& text = valueArg(a[0], Value::Kind::String, "the text of _codecs.encode").text;
      const std::string& encoding = valueArg(a[1], Value::Kind::String, "the encoding of _codecs.encode").text;
      if (encoding != "latin1" && encoding != "latin-1")
        fail("_codecs.encode encoding " + quoted(encoding) + " is not supported (only latin1)");
      charge(text.size());
      std::string bytes;
      uint32_t cp;
      for (size_t i = 0; i < text.size();) {
        if (!nextCodePoint(text, i, cp) || cp > 0xFF) fail("_codecs.encode text is not latin-1");
        bytes += char(cp);
      }
      return data(makeBytes(std::move(bytes)));
    }
    case Global::EmptyBytes:
      // Protocols < 3 write b'' as bytes(); any argument could make it do more than that.
      if (!a.empty()) fail("bytes() is only accepted without arguments");
      return data(makeBytes(""));
    case Global::RebuildTensorV2: return rebuildTensor(a, true);
    case Global::RebuildTensor: return rebuildTensor(a, false);
    case Global::RebuildParameter: return rebuildParameter(a, false);
    case Global::RebuildParameterWithState: return rebuildParameter(a, true);
    case Global::StorageType: break;
  }
  if (g == Global::Object) fail(name + " cannot be called; it may only appear as an argument of copyreg._reconstructor");
  fail(name + " cannot be called; it may only appear in a storage persistent id");
}

Item Unpickler::orderedDict(const std::vector<Item>& a, const Item& args) {
  Item dict = container(Value::Kind::Dict);
  dict.value->ordered = true;
  if (a.empty()) return dict;
  if (a.size() != 1 || a[0].kind != Item::Kind::Value || a[0].value->kind != Value::Kind::List)
    fail("collections.OrderedDict takes () or a list of (key, value) pairs");
  charge(a[0].value->items.size());
  for (const ValuePtr& pair : a[0].value->items) {
    if ((pair->kind != Value::Kind::Tuple && pair->kind != Value::Kind::List) || pair->items.size() != 2)
      fail("collections.OrderedDict items must be (key, value) pairs");
    setItem(dict, data(pair->items[0]), data(pair->items[1]));
  }
  // The pairs came out of `args` without their Meta; its figures bound the new dict's.
  if (args.meta) {
    dict.meta->depth = std::max(dict.meta->depth, args.meta->depth);
    dict.meta->values = std::max(dict.meta->values, args.meta->values);
  }
  return dict;
}

void Unpickler::checkTensor(const TensorRef& t) {
  const StorageRef& s = *t.storage;
  if (t.storageOffset < 0) fail("negative storage offset " + std::to_string(t.storageOffset));
  if (t.sizes.size() != t.strides.size())
    fail("size has " + std::to_string(t.sizes.size()) + " dims but stride has " + std::to_string(t.strides.size()));
  bool empty = false;
  for (size_t d = 0; d < t.sizes.size(); ++d) {
    if (t.sizes[d] < 0 || t.strides[d] < 0) fail("negative size or stride in dim " + std::to_string(d));
    empty = empty || t.sizes[d] == 0;
  }
  if (empty) {
    if (t.storageOffset > s.numel) fail("storage offset is past the end of storage " + quoted(s.key));
    return;
  }
  int64_t numel = 1, last = t.storageOffset, span;
  for (size_t d = 0; d < t.sizes.size(); ++d) {
    if (__builtin_mul_overflow(numel, t.sizes[d], &numel) ||
        __builtin_mul_overflow(t.sizes[d] - 1, t.strides[d], &span) || __builtin_add_overflow(last, span, &last))
      fail("tensor size or extent overflows int64");
  }
  if (last >= s.numel)
    fail("tensor reaches element " + std::to_string(last) + " but storage " + quoted(s.key) + " has " +
         std::to_string(s.numel) + " elements");
}

Item Unpickler::rebuildTensor(const std::vector<Item>& a, bool v2) {
  // _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, backward_hooks[, metadata])
  // _rebuild_tensor(storage, offset, size, stride)
  if (v2 ? (a.size() != 6 && a.size() != 7) : a.size() != 4)
    fail(std::string(v2 ? "_rebuild_tensor_v2 takes 6 or 7" : "_rebuild_tensor takes 4") + " arguments, got " +
         std::to_string(a.size()));
  if (a[0].kind != Item::Kind::Storage) fail("the first tensor argument must be a storage persistent id");
  TensorRef t;
  t.storage = a[0].storage;
  t.storageOffset = valueArg(a[1], Value::Kind::Int, "storage_offset").integer;
  t.sizes = intsArg(a[2], "size");
  t.strides = intsArg(a[3], "stride");
  if (v2) {
    t.requiresGrad = valueArg(a[4], Value::Kind::Bool, "requires_grad").boolean;
    valueArg(a[5], Value::Kind::Dict, "backward_hooks");  // always empty from torch.save; ignored
    if (a.size() == 7) dataOf(a[6], "tensor metadata");   // python attributes; ignored
  }
  checkTensor(t);
  return data(makeTensor(std::move(t)));
}

Item Unpickler::rebuildParameter(const std::vector<Item>& a, bool withState) {
  // _rebuild_parameter(data, requires_grad, backward_hooks[, state])
  if (a.size() != (withState ? 4u : 3u)) fail("wrong number of arguments to _rebuild_parameter");
  TensorRef t = valueArg(a[0], Value::Kind::Tensor, "the parameter data").tensor;
  charge(t.sizes.size());
  t.requiresGrad = valueArg(a[1], Value::Kind::Bool, "requires_grad").boolean;
  valueArg(a[2], Value::Kind::Dict, "backward_hooks");
  if (withState) dataOf(a[3], "parameter state");  // python attributes; ignored
  return data(makeTensor(std::move(t)));
}

Item Unpickler::persistentLoad(const Item& pid) {
  // ('storage', torch.<Type>Storage, key, location, numel), plus view_metadata (None) in legacy files.
  static const char* kForm = "a persistent id must be ('storage', torch.<Type>Storage, key, location, numel)";
  if (pid.kind != Item::Kind::RawTuple) fail(kForm);
  const std::vector<Item>& p = *pid.parts;
  auto isString = [](const Item& it) { return it.kind == Item::Kind::Value && it.value->kind == Value::Kind::String; };
  auto isStringOrNone = [&](const Item& it) {
    return isString(it) || (it.kind == Item::Kind::Value && it.value->kind == Value::Kind::None);
  };
  // Legacy files name each module class as ('module', cls, source file, source): the class itself.
  if (p.size() == 4 && isString(p[0]) && p[0].value->text == "module" && p[1].kind == Item::Kind::Global &&
      p[1].global->global == Global::ModuleClass && isStringOrNone(p[2]) && isStringOrNone(p[3]))
    return p[1];
  if ((p.size() != 5 && p.size() != 6) || !isString(p[0]) || p[0].value->text != "storage" ||
      p[1].kind != Item::Kind::Global || p[1].global->global != Global::StorageType || !isString(p[2]) ||
      !isString(p[3]) || p[4].kind != Item::Kind::Value || p[4].value->kind != Value::Kind::Int)
    fail(kForm);
  if (p.size() == 6 && (p[5].kind != Item::Kind::Value || p[5].value->kind != Value::Kind::None))
    fail("storage views (legacy view_metadata) are not supported");
  const std::string& key = p[2].value->text;
  charge(key.size());
  if (key.empty() || key.size() > 256 ||
      std::any_of(key.begin(), key.end(), [](char c) { return c < 0x21 || c > 0x7e || c == '/' || c == '\\'; }))
    fail("storage key " + quoted(key) + " is not a plain name");
  DType dtype = p[1].global->dtype;
  int64_t numel = p[4].value->integer, bytes;
  if (numel < 0 || __builtin_mul_overflow(numel, int64_t(dtypeSize(dtype)), &bytes) || bytes > limits_.maxStorageBytes)
    fail("storage " + quoted(key) + " has a bad or too large element count " + std::to_string(numel));
  std::shared_ptr<StorageRef>& slot = storages_[key];
  if (!slot) {
    slot = std::make_shared<StorageRef>();
    slot->key = key;
    slot->dtype = dtype;
    slot->location = p[3].value->text;
    slot->numel = numel;
  } else if (slot->dtype != dtype || slot->numel != numel) {
    fail("storage " + quoted(key) + " is named twice with different types or sizes");
  }
  Item s;
  s.kind = Item::Kind::Storage;
  s.storage = slot;
  return s;
}

// A Python 2 str literal as repr() writes it: quoted, with \\ \' \" \n \r \t \xHH escapes.
bool decodeStringLiteral(std::string_view s, std::string& out) {
  if (s.size() < 2 || (s[0] != '\'' && s[0] != '"') || s.back() != s[0]) return false;
  s = s.substr(1, s.size() - 2);
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 == s.size()) { out += s[i]; continue; }
    char e = s[++i];
    if (e == 'n') out += '\n';
    else if (e == 'r') out += '\r';
    else if (e == 't') out += '\t';
    else if (e == '\\' || e == '\'' || e == '"') out += e;
    else if (e == 'x' && i + 2 < s.size() && hexDigit(s[i + 1]) >= 0 && hexDigit(s[i + 2]) >= 0) {
      out += char(hexDigit(s[i + 1]) * 16 + hexDigit(s[i + 2]));
      i += 2;
    } else {
      return false;
    }
  }
  return true;
}

ValuePtr Unpickler::run() {
  for (;;) {
    opStart_ = pos_;
    op_ = -1;
    if (pos_ >= size_) fail("unexpected end of data (no STOP opcode)");
    op_ = data_[pos_++];
    switch (op_) {
      case 0x80: if (*take(1) > 5) fail("unsupported protocol " + std::to_string(data_[pos_ - 1])); break;
      case 0x95: take(8); break;  // FRAME: only groups opcodes for buffered reads; the data is in memory
      case '.': {
        Item result = pop();
        return dataOf(result, "the pickle's result");
      }
      case '(':
        if (marks_.size() >= limits_.maxStackItems) fail("too many MARKs");
        marks_.push_back(stack_.size());
        break;
      case '0':
        if (stack_.size() > markBase()) stack_.pop_back();
        else if (!marks_.empty()) marks_.pop_back();
        else fail("stack underflow");
        break;
      case '1': dropFrom(popMark()); break;
      case '2': { Item copy = top(); push(std::move(copy)); break; }
      case 'N': push(data(makeNone())); break;
      case 0x88: push(data(makeBool(true))); break;
      case 0x89: push(data(makeBool(false))); break;
      case 'I': {
        std::string_view line = readLine();
        int64_t v;
        if (line == "00" || line == "01") push(data(makeBool(line == "01")));  // protocol 0/1 bools
        else if (parseDecimal(line, v)) push(data(makeInt(v)));
        else fail("INT argument " + quoted(line) + " is not an integer that fits in 64 bits");
        break;
      }
      case 'L': {
        std::string_view line = readLine();
        if (!line.empty() && line.back() == 'L') line.remove_suffix(1);
        int64_t v;
        if (!parseDecimal(line, v)) fail("LONG argument " + quoted(line) + " is not an integer that fits in 64 bits");
        push(data(makeInt(v)));
        break;
      }
      case 'J': push(data(makeInt(int32_t(uint32_t(readLE(4)))))); break;
      case 'K': push(data(makeInt(int64_t(readLE(1))))); break;
      case 'M': push(data(makeInt(int64_t(readLE(2))))); break;
      case 0x8a: case 0x8b: {
        // Little-endian two's complement of any length; only values that fit int64 are accepted.
        uint64_t n = op_ == 0x8a ? readLE(1) : uint64_t(int64_t(int32_t(uint32_t(readLE(4)))));
        if (int64_t(n) < 0) fail("negative length");
        const uint8_t* p = take(n);
        bool negative = n > 0 && (p[n - 1] & 0x80);
        for (uint64_t i = 8; i < n; ++i)
          if (p[i] != (negative ? 0xFF : 0x00)) fail("integer does not fit in 64 bits");
        if (n > 8 && bool(p[7] & 0x80) != negative) fail("integer does not fit in 64 bits");
        uint64_t u = negative ? ~uint64_t(0) : 0;  // sign-extend, then overwrite the low bytes
        for (uint64_t i = 0; i < std::min<uint64_t>(n, 8); ++i)
          u = (u & ~(uint64_t(0xFF) << (8 * i))) | uint64_t(p[i]) << (8 * i);
        int64_t v;
        std::memcpy(&v, &u, sizeof v);
        push(data(makeInt(v)));
        break;
      }
      case 'F': {
        std::string_view line = readLine();
        double v = 0;
        auto [end, ec] = std::from_chars(line.data(), line.data() + line.size(), v);
        if (ec != std::errc() || end != line.data() + line.size())
          fail("FLOAT argument " + quoted(line) + " is not a number");
        push(data(makeFloat(v)));
        break;
      }
      case 'G': {
        uint64_t bits = 0;
        for (const uint8_t* p = take(8), *e = p + 8; p != e; ++p) bits = bits << 8 | *p;  // big-endian
        double v;
        std::memcpy(&v, &bits, sizeof v);
        push(data(makeFloat(v)));
        break;
      }
      case 'S': {
        std::string_view line = readLine();
        std::string text;
        if (!decodeStringLiteral(line, text)) fail("STRING argument is not a quoted string literal");
        pushText(text, "STRING");
        break;
      }
      case 'T': {
        int64_t n = int32_t(uint32_t(readLE(4)));
        if (n < 0) fail("negative length");
        pushText(readText(uint64_t(n)), "BINSTRING");
        break;
      }
      case 'U': pushText(readText(readLE(1)), "SHORT_BINSTRING"); break;
      case 'X': pushText(readText(readLE(4)), "BINUNICODE"); break;
      case 0x8c: pushText(readText(readLE(1)), "SHORT_BINUNICODE"); break;
      case 0x8d: pushText(readText(readLE(8)), "BINUNICODE8"); break;
      case 'V': {
        // raw-unicode-escape: latin-1 bytes plus \uXXXX / \UXXXXXXXX escapes.
        std::string_view line = readLine();
        std::string text;
        for (size_t i = 0; i < line.size();) {
          if (line[i] == '\\' && i + 1 < line.size() && (line[i + 1] == 'u' || line[i + 1] == 'U')) {
            size_t digits = line[i + 1] == 'u' ? 4 : 8;
            if (line.size() - i - 2 < digits) fail("truncated \\u escape in UNICODE argument");
            uint32_t cp = 0;
            for (size_t k = 0; k < digits; ++k) {
              int h = hexDigit(line[i + 2 + k]);
              if (h < 0) fail("bad \\u escape in UNICODE argument");
              cp = cp << 4 | uint32_t(h);
            }
            if (cp > 0x10FFFF) fail("code point out of range in UNICODE argument");
            appendUtf8(text, cp);
            i += 2 + digits;
          } else {
            appendUtf8(text, uint8_t(line[i++]));
          }
        }
        push(data(makeString(std::move(text))));
        break;
      }
      case 'B': push(data(makeBytes(std::string(readText(readLE(4)))))); break;
      case 'C': push(data(makeBytes(std::string(readText(readLE(1)))))); break;
      case 0x8e: push(data(makeBytes(std::string(readText(readLE(8)))))); break;
      case ']': push(container(Value::Kind::List)); break;
      case ')': push(container(Value::Kind::Tuple)); break;
      case '}': push(container(Value::Kind::Dict)); break;
      case 'a': { Item v = pop(); appendTo(top(), v); break; }
      case 0x8f: push(container(Value::Kind::List)); break;  // EMPTY_SET: sets are read as lists
      case 'e': case 'l': case 0x90: case 0x91: {  // APPENDS, LIST, ADDITEMS, FROZENSET
        size_t base = popMark();
        if (op_ == 'l' || op_ == 0x91) base = insertContainer(base, Value::Kind::List);
        if (base <= markBase()) fail("stack underflow");
        for (size_t i = base; i < stack_.size(); ++i) appendTo(stack_[base - 1], stack_[i]);
        dropFrom(base);
        break;
      }
      case 'd': case 'u': {
        size_t base = popMark();
        if ((stack_.size() - base) % 2) fail("odd number of items for a dict");
        if (op_ == 'd') base = insertContainer(base, Value::Kind::Dict);
        if (base <= markBase()) fail("stack underflow");
        for (size_t i = base; i < stack_.size(); i += 2) setItem(stack_[base - 1], stack_[i], stack_[i + 1]);
        dropFrom(base);
        break;
      }
      case 't': tupleFrom(popMark()); break;
      case 0x85: case 0x86: case 0x87: {
        size_t n = size_t(op_ - 0x84);
        if (stack_.size() < markBase() + n) fail("stack underflow");
        tupleFrom(stack_.size() - n);
        break;
      }
      case 's': {
        Item v = pop();
        Item k = pop();
        setItem(top(), k, v);
        break;
      }
      case 'g': case 'h': case 'j': {
        uint64_t index = op_ == 'g' ? readIndexLine() : readLE(op_ == 'h' ? 1 : 4);
        const Item* item = memo_.find(index);
        if (!item) fail("memo entry " + std::to_string(index) + " was never stored");
        push(*item);
        break;
      }
      case 'p': case 'q': case 'r': case 0x94: {
        uint64_t index = op_ == 'p' ? readIndexLine() : op_ == 0x94 ? memo_.size() : readLE(op_ == 'q' ? 1 : 4);
        const Item& value = top();
        if (!memo_.find(index)) checkRoom();
        memo_.put(index, value);
        break;
      }
      case 'c': {
        std::string_view module = readLine();
        std::string_view name = readLine();
        push(resolveGlobal(module, name));
        break;
      }
      case 0x93: {
        Item name = pop();
        Item module = pop();
        const Value& n = valueArg(name, Value::Kind::String, "the STACK_GLOBAL name");
        const Value& m = valueArg(module, Value::Kind::String, "the STACK_GLOBAL module");
        push(resolveGlobal(m.text, n.text));
        break;
      }
      case 'R': case 0x81: {
        Item args = pop();
        Item callable = pop();
        push(call(callable, args, op_ == 0x81));
        break;
      }
      case 'b': {
        // torch attaches `_metadata` to state_dict OrderedDicts through BUILD; it is dropped.
        Item state = pop();
        if (top().kind == Item::Kind::Object) {
          buildModule(top(), state);
          break;
        }
        dataOf(state, "BUILD state");
        Item& target = top();
        if (target.kind != Item::Kind::Value || target.value->kind != Value::Kind::Dict || !target.value->ordered)
          fail("BUILD is only accepted on a collections.OrderedDict");
        break;
      }
      case 'Q': { Item pid = pop(); push(persistentLoad(pid)); break; }
      case 'P': fail("text persistent ids are not supported; expected a ('storage', ...) tuple via BINPERSID");
      default: fail("opcode not supported");
    }
  }
}

}  // namespace

Parsed unpickleAt(const uint8_t* data, size_t size, size_t start, const Limits& limits) {
  Unpickler unpickler(data, size, start, limits);
  ValuePtr root = unpickler.run();
  return {std::move(root), unpickler.end(), std::move(unpickler.storages())};
}

ValuePtr unpickle(const uint8_t* data, size_t size, const Limits& limits) {
  return unpickleAt(data, size, 0, limits).root;
}

}  // namespace finetorch::formats
