// Protocol-2 pickler for Value trees, shaped like torch.save's own output so that torch.load reads
// it, also with weights_only=True. The tree is walked with an explicit stack bounded by
// Limits.maxDepth, so a deep (or, through shared_ptrs, cyclic) tree is a FormatError, not a crash.

#include "formats/pickle.h"

#include <cstring>
#include <unordered_map>

namespace finetorch::formats {
namespace {

const char* storageTypeName(DType dtype) {
  switch (dtype) {
    case DType::Float32: return "FloatStorage";
    case DType::Float64: return "DoubleStorage";
    case DType::Float16: return "HalfStorage";
    case DType::BFloat16: return "BFloat16Storage";
    case DType::Int64: return "LongStorage";
    case DType::Int32: return "IntStorage";
    case DType::Int16: return "ShortStorage";
    case DType::Int8: return "CharStorage";
    case DType::UInt8: return "ByteStorage";
    case DType::Bool: return "BoolStorage";
  }
  return "FloatStorage";
}

class Pickler {
 public:
  explicit Pickler(const Limits& limits) : limits_(limits) {}

  std::string run(const Value& root) {
    out_.reserve(4096);
    op(0x80);  // PROTO 2
    op(2);
    visit(root);
    while (!stack_.empty()) {
      Frame& frame = stack_.back();
      const Value& parent = *frame.value;
      size_t count = parent.kind == Value::Kind::Dict ? 2 * parent.entries.size() : parent.items.size();
      if (frame.next == count) {
        stack_.pop_back();
        close(parent);
        continue;
      }
      size_t i = frame.next++;
      const ValuePtr& child = parent.kind != Value::Kind::Dict ? parent.items[i]
                              : i % 2 == 0                      ? parent.entries[i / 2].first
                                                                : parent.entries[i / 2].second;
      if (!child) throw FormatError("pickle: null value inside a container");
      visit(*child);  // may push a frame, invalidating `frame`
    }
    op('.');
    return std::move(out_);
  }

 private:
  struct Frame {
    const Value* value;
    size_t next;  // index of the next child; a dict's children are key, value, key, value, ...
  };

  void op(uint8_t c) { out_ += char(c); }
  void littleEndian(uint64_t v, size_t n) {
    for (size_t i = 0; i < n; ++i) out_ += char(v >> (8 * i) & 0xFF);
  }

  // Scalars and tensors are written whole; containers write their opening and push a frame.
  void visit(const Value& v) {
    switch (v.kind) {
      case Value::Kind::None: op('N'); return;
      case Value::Kind::Bool: op(v.boolean ? 0x88 : 0x89); return;
      case Value::Kind::Int: integer(v.integer); return;
      case Value::Kind::Float: real(v.real); return;
      case Value::Kind::String: unicode(v.text); return;
      case Value::Kind::Bytes: bytes(v.text); return;
      case Value::Kind::Tensor: tensor(v.tensor); return;
      case Value::Kind::List:
        op(']');
        if (!v.items.empty()) op('(');
        break;
      case Value::Kind::Tuple:
        if (v.items.empty()) { op(')'); return; }
        if (v.items.size() > 3) op('(');
        break;
      case Value::Kind::Dict:
        if (v.ordered) {
          global("collections", "OrderedDict");
          op(')');
          op('R');
        } else {
          op('}');
        }
        if (!v.entries.empty()) op('(');
        break;
    }
    if (stack_.size() >= limits_.maxDepth)
      throw FormatError("pickle: containers nested deeper than the limit of " + std::to_string(limits_.maxDepth));
    stack_.push_back({&v, 0});
  }

  void close(const Value& v) {
    switch (v.kind) {
      case Value::Kind::List:  // APPENDS
        if (!v.items.empty()) op('e');
        break;
      case Value::Kind::Tuple:  // TUPLE1-3, or TUPLE after a MARK
        op(v.items.size() <= 3 ? uint8_t(0x84 + v.items.size()) : 't');
        break;
      case Value::Kind::Dict:  // SETITEMS
        if (!v.entries.empty()) op('u');
        break;
      default: break;
    }
  }

  // GLOBAL, memoized so each global is spelled out once.
  void global(const char* module, const char* name) {
    std::string key = std::string(module) + "\n" + name;
    auto it = memo_.find(key);
    if (it != memo_.end()) {
      if (it->second < 256) { op('h'); op(uint8_t(it->second)); }
      else { op('j'); littleEndian(it->second, 4); }
      return;
    }
    op('c');
    out_ += key;
    out_ += '\n';
    uint32_t index = uint32_t(memo_.size());
    if (index < 256) { op('q'); op(uint8_t(index)); }
    else { op('r'); littleEndian(index, 4); }
    memo_.emplace(std::move(key), index);
  }

  void integer(int64_t v) {
    if (v >= 0 && v < 256) { op('K'); op(uint8_t(v)); return; }
    if (v >= 0 && v < 65536) { op('M'); littleEndian(uint64_t(v), 2); return; }
    if (v >= INT32_MIN && v <= INT32_MAX) { op('J'); littleEndian(uint64_t(v), 4); return; }
    // LONG1: shortest little-endian two's complement, as Python's encode_long writes it.
    uint8_t b[8];
    uint64_t u = uint64_t(v);
    for (int i = 0; i < 8; ++i) b[i] = uint8_t(u >> (8 * i));
    size_t n = 8;
    while (n > 1 && ((b[n - 1] == 0x00 && !(b[n - 2] & 0x80)) || (b[n - 1] == 0xFF && (b[n - 2] & 0x80)))) --n;
    op(0x8a);
    op(uint8_t(n));
    out_.append(reinterpret_cast<const char*>(b), n);
  }

  void real(double v) {
    uint64_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    op('G');  // BINFLOAT, big-endian
    for (int i = 7; i >= 0; --i) out_ += char(bits >> (8 * i) & 0xFF);
  }

  void unicode(const std::string& s) {
    if (s.size() > UINT32_MAX) throw FormatError("pickle: string longer than 4 GiB");
    op('X');  // BINUNICODE
    littleEndian(s.size(), 4);
    out_ += s;
  }

  // Protocol 2 has no bytes opcode; Python writes _codecs.encode(<bytes as latin-1 text>, 'latin1').
  void bytes(const std::string& b) {
    std::string latin1;
    latin1.reserve(b.size() * 2);
    for (unsigned char c : b) {
      if (c < 0x80) { latin1 += char(c); continue; }
      latin1 += char(0xC0 | c >> 6);
      latin1 += char(0x80 | (c & 0x3F));
    }
    global("_codecs", "encode");
    unicode(latin1);
    unicode("latin1");
    op(0x86);  // TUPLE2
    op('R');
  }

  void intTuple(const std::vector<int64_t>& values) {
    if (values.empty()) { op(')'); return; }
    if (values.size() > 3) op('(');
    for (int64_t v : values) integer(v);
    op(values.size() <= 3 ? uint8_t(0x84 + values.size()) : 't');
  }

  // torch._utils._rebuild_tensor_v2(
  //     persistent_id(('storage', torch.<Type>Storage, key, location, numel)),
  //     storage_offset, size, stride, requires_grad, collections.OrderedDict())
  void tensor(const TensorRef& t) {
    if (!t.storage) throw FormatError("pickle: tensor without a storage");
    if (t.sizes.size() != t.strides.size()) throw FormatError("pickle: tensor sizes and strides differ in length");
    global("torch._utils", "_rebuild_tensor_v2");
    op('(');
    op('(');
    unicode("storage");
    global("torch", storageTypeName(t.storage->dtype));
    unicode(t.storage->key);
    unicode(t.storage->location);
    integer(t.storage->numel);
    op('t');
    op('Q');  // BINPERSID
    integer(t.storageOffset);
    intTuple(t.sizes);
    intTuple(t.strides);
    op(t.requiresGrad ? 0x88 : 0x89);
    global("collections", "OrderedDict");
    op(')');
    op('R');
    op('t');
    op('R');
  }

  const Limits& limits_;
  std::string out_;
  std::vector<Frame> stack_;
  std::unordered_map<std::string, uint32_t> memo_;
};

}  // namespace

std::string pickle(const Value& root, const Limits& limits) { return Pickler(limits).run(root); }

std::string pickle(const Value& root) { return pickle(root, Limits{}); }

}  // namespace finetorch::formats
