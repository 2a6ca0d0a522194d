// Standalone self-test of the restricted pickle reader/writer: plain C++17, no torch headers, meant
// to run under -fsanitize=address,undefined (see run.sh). Over 600 lines because it is one test
// program (one main, one fixture list) that must build alone with a bare g++ line.
//
//   formats_selftest FIXTURE_DIR ROUNDTRIP_DIR
//
// FIXTURE_DIR is written by make_fixtures.py (torch.save files and expected.json). ROUNDTRIP_DIR
// receives pickles written by pickle() plus their raw storages, for `make_fixtures.py
// --check-roundtrip` to zip and torch.load.
//
// Built with -DFINETORCH_FUZZER -fsanitize=fuzzer this file is instead a libFuzzer target over
// checkOneInput(), the invariant the mutation tests below also use.

#include "formats/pickle.h"

#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <random>
#include <sstream>

using namespace finetorch::formats;
using namespace std::string_literals;

namespace {

// ---------------------------------------------------------------------------------------------
// The invariant: any input either parses or throws FormatError, and whatever parses survives
// pickle() -> unpickle() unchanged.

bool sameTree(const Value& a, const Value& b) {  // recursion is fine: parsed trees are <= maxDepth
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Value::Kind::None: return true;
    case Value::Kind::Bool: return a.boolean == b.boolean;
    case Value::Kind::Int: return a.integer == b.integer;
    case Value::Kind::Float: return std::memcmp(&a.real, &b.real, sizeof a.real) == 0;
    case Value::Kind::String: case Value::Kind::Bytes: return a.text == b.text;
    case Value::Kind::List: case Value::Kind::Tuple:
      if (a.items.size() != b.items.size()) return false;
      for (size_t i = 0; i < a.items.size(); ++i)
        if (!sameTree(*a.items[i], *b.items[i])) return false;
      return true;
    case Value::Kind::Dict:
      if (a.ordered != b.ordered || a.entries.size() != b.entries.size()) return false;
      for (size_t i = 0; i < a.entries.size(); ++i)
        if (!sameTree(*a.entries[i].first, *b.entries[i].first) || !sameTree(*a.entries[i].second, *b.entries[i].second))
          return false;
      return true;
    case Value::Kind::Tensor: {
      const TensorRef &x = a.tensor, &y = b.tensor;
      return x.storage->key == y.storage->key && x.storage->dtype == y.storage->dtype &&
             x.storage->numel == y.storage->numel && x.storage->location == y.storage->location &&
             x.storageOffset == y.storageOffset && x.sizes == y.sizes && x.strides == y.strides &&
             x.requiresGrad == y.requiresGrad;
    }
  }
  return false;
}

// Returns "" when the invariant holds for `data`, else what went wrong. `parsed` counts the
// readers (bare pickle, legacy file) that accepted it.
std::string checkOneInput(const uint8_t* data, size_t size, int* parsed = nullptr) {
  for (int legacy = 0; legacy < 2; ++legacy) {
    ValuePtr root;
    try {
      root = legacy ? readLegacy(data, size).root : unpickle(data, size);
      if (parsed) ++*parsed;
    } catch (const FormatError&) {
      continue;
    } catch (const std::exception& e) {
      return std::string("not a FormatError: ") + e.what();
    }
    try {
      std::string again = pickle(*root);
      ValuePtr back = unpickle(reinterpret_cast<const uint8_t*>(again.data()), again.size());
      if (!sameTree(*root, *back)) return "the tree changed through pickle() and unpickle()";
    } catch (const std::exception& e) {
      return std::string("re-pickling a parsed tree failed: ") + e.what();
    }
  }
  return "";
}

}  // namespace

#ifdef FINETORCH_FUZZER
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string problem = checkOneInput(data, size);
  if (!problem.empty()) {
    std::fprintf(stderr, "%s\n", problem.c_str());
    std::abort();
  }
  return 0;
}
#else

namespace {

int failures = 0;

void fail(const std::string& what) {
  ++failures;
  std::cerr << "FAIL: " << what << "\n";
}

std::vector<uint8_t> readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::vector<uint8_t> data(size_t(in.tellg()));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(data.data()), std::streamsize(data.size()));
  if (!in) throw std::runtime_error("cannot read " + path);
  return data;
}

void writeFile(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary);
  out.write(data.data(), std::streamsize(data.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

ValuePtr parse(const std::string& bytes, const Limits& limits = {}) {
  return unpickle(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), limits);
}

// ---------------------------------------------------------------------------------------------
// A small JSON reader for expected.json (trusted input, so plain recursion).

struct Json {
  enum class Kind { Null, Bool, Number, String, Array, Object } kind = Kind::Null;
  bool boolean = false;
  std::string text;  // Number: as written; String: UTF-8
  std::vector<Json> items;
  std::vector<std::pair<std::string, Json>> fields;

  const Json& operator[](const char* key) const {
    static const Json null;
    for (const auto& f : fields)
      if (f.first == key) return f.second;
    return null;
  }
  double number() const { return std::strtod(text.c_str(), nullptr); }
  int64_t integer() const { return std::strtoll(text.c_str(), nullptr, 10); }
};

class JsonParser {
 public:
  explicit JsonParser(std::string s) : s_(std::move(s)) {}
  Json parse() {
    Json v = value();
    skip();
    if (i_ != s_.size()) error();
    return v;
  }

 private:
  [[noreturn]] void error() { throw std::runtime_error("bad JSON at " + std::to_string(i_)); }
  void skip() { while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_; }
  bool eat(char c) { skip(); if (i_ < s_.size() && s_[i_] == c) { ++i_; return true; } return false; }
  bool word(const char* w) { size_t n = std::strlen(w); if (s_.compare(i_, n, w) != 0) return false; i_ += n; return true; }
  unsigned hex4() {
    if (i_ + 4 > s_.size()) error();
    unsigned v = unsigned(std::stoul(s_.substr(i_, 4), nullptr, 16));
    i_ += 4;
    return v;
  }
  std::string string() {
    if (!eat('"')) error();
    std::string out;
    while (i_ < s_.size() && s_[i_] != '"') {
      char c = s_[i_++];
      if (c != '\\') { out += c; continue; }
      char e = s_[i_++];
      switch (e) {
        case 'n': out += '\n'; break; case 't': out += '\t'; break; case 'r': out += '\r'; break;
        case 'b': out += '\b'; break; case 'f': out += '\f'; break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xD800 && cp < 0xDC00 && word("\\u")) cp = 0x10000 + ((cp - 0xD800) << 10) + (hex4() - 0xDC00);
          int extra = cp < 0x80 ? 0 : cp < 0x800 ? 1 : cp < 0x10000 ? 2 : 3;
          static const unsigned kLead[] = {0x00, 0xC0, 0xE0, 0xF0};
          out += char(kLead[extra] | cp >> (6 * extra));
          for (int k = extra - 1; k >= 0; --k) out += char(0x80 | (cp >> (6 * k) & 0x3F));
          break;
        }
        default: out += e;
      }
    }
    ++i_;
    return out;
  }
  Json value() {
    Json v;
    skip();
    if (i_ >= s_.size()) error();
    char c = s_[i_];
    if (c == '{') {
      v.kind = Json::Kind::Object;
      ++i_;
      if (eat('}')) return v;
      do {
        std::string key = string();
        if (!eat(':')) error();
        v.fields.emplace_back(std::move(key), value());
      } while (eat(','));
      if (!eat('}')) error();
    } else if (c == '[') {
      v.kind = Json::Kind::Array;
      ++i_;
      if (eat(']')) return v;
      do v.items.push_back(value()); while (eat(','));
      if (!eat(']')) error();
    } else if (c == '"') {
      v.kind = Json::Kind::String;
      v.text = string();
    } else if (word("true") || word("false")) {
      v.kind = Json::Kind::Bool;
      v.boolean = s_[i_ - 1] == 'e' && s_[i_ - 2] == 'u';
    } else if (word("null")) {
    } else {
      v.kind = Json::Kind::Number;
      size_t start = i_;
      while (i_ < s_.size() && std::strchr("+-0123456789.eE", s_[i_])) ++i_;
      if (start == i_) error();
      v.text = s_.substr(start, i_ - start);
    }
    return v;
  }

  std::string s_;
  size_t i_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Flattening a tree into one line per value, the way make_fixtures.py's walk() does.

std::string fmt(double d) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", d);
  return buf;
}

template <class T>
std::string listOf(const std::vector<T>& values, std::function<std::string(const T&)> show) {
  std::string out = "[";
  for (size_t i = 0; i < values.size(); ++i) out += (i ? "," : "") + show(values[i]);
  return out + "]";
}

std::string hexOf(const std::string& bytes) {
  std::string out;
  char buf[3];
  for (unsigned char c : bytes) { std::snprintf(buf, sizeof buf, "%02x", c); out += buf; }
  return out;
}

struct Line {
  std::string path, desc;
  bool tensor = false;
  double sum = 0, absSum = 0;
};

double halfToDouble(uint16_t h) {
  int exponent = h >> 10 & 0x1F, mantissa = h & 0x3FF;
  double magnitude = exponent == 0 ? std::ldexp(mantissa, -24)
                     : exponent == 31 ? (mantissa ? NAN : INFINITY)
                                      : std::ldexp(mantissa + 1024, exponent - 25);
  return h & 0x8000 ? -magnitude : magnitude;
}

double element(DType dtype, const uint8_t* p) {
  auto load = [p](auto v) { std::memcpy(&v, p, sizeof v); return v; };
  switch (dtype) {
    case DType::Float32: return load(float());
    case DType::Float64: return load(double());
    case DType::Float16: return halfToDouble(load(uint16_t()));
    case DType::BFloat16: { uint32_t bits = uint32_t(load(uint16_t())) << 16; float f; std::memcpy(&f, &bits, 4); return f; }
    case DType::Int64: return double(load(int64_t()));
    case DType::Int32: return load(int32_t());
    case DType::Int16: return load(int16_t());
    case DType::Int8: return load(int8_t());
    case DType::UInt8: return load(uint8_t());
    case DType::Bool: return p[0] ? 1 : 0;
  }
  return 0;
}

using StorageBytes = std::function<const uint8_t*(const StorageRef&)>;

class Flattener {
 public:
  explicit Flattener(StorageBytes bytesOf) : bytesOf_(std::move(bytesOf)) {}

  void walk(const Value& v, const std::string& path, std::vector<Line>& out) {
    Line line;
    line.path = path;
    switch (v.kind) {
      case Value::Kind::None: line.desc = "none"; break;
      case Value::Kind::Bool: line.desc = v.boolean ? "bool true" : "bool false"; break;
      case Value::Kind::Int: line.desc = "int " + std::to_string(v.integer); break;
      case Value::Kind::Float: line.desc = "float " + fmt(v.real); break;
      case Value::Kind::String: line.desc = "str " + v.text; break;
      case Value::Kind::Bytes: line.desc = "bytes " + hexOf(v.text); break;
      case Value::Kind::List: case Value::Kind::Tuple:
        line.desc = std::string(v.kind == Value::Kind::List ? "list" : "tuple") + " len=" + std::to_string(v.items.size());
        out.push_back(line);
        for (size_t i = 0; i < v.items.size(); ++i) walk(*v.items[i], path + "/[" + std::to_string(i) + "]", out);
        return;
      case Value::Kind::Dict:
        line.desc = std::string(v.ordered ? "odict" : "dict") + " len=" + std::to_string(v.entries.size());
        out.push_back(line);
        for (const auto& [k, child] : v.entries)
          walk(*child, path + (k->kind == Value::Kind::Int ? "/#" + std::to_string(k->integer) : "/" + k->text), out);
        return;
      case Value::Kind::Tensor: tensorLine(v.tensor, line); break;
    }
    out.push_back(line);
  }

 private:
  void tensorLine(const TensorRef& t, Line& line) {
    int storageId = storageIds_.emplace(t.storage.get(), int(storageIds_.size())).first->second;
    const uint8_t* base = bytesOf_(*t.storage);
    size_t elemSize = dtypeSize(t.storage->dtype);
    // Visit elements in row-major order: an odometer over the outer dims, a loop over the last.
    std::vector<int64_t> sizes = t.sizes, strides = t.strides;
    if (sizes.empty()) { sizes = {1}; strides = {1}; }
    int64_t inner = sizes.back(), innerStride = strides.back(), outer = 1;
    for (size_t d = 0; d + 1 < sizes.size(); ++d) outer *= sizes[d];
    std::vector<double> first;
    std::vector<int64_t> index(sizes.size() - 1, 0);
    for (int64_t o = 0; o < outer; ++o) {
      int64_t offset = t.storageOffset;
      for (size_t d = 0; d < index.size(); ++d) offset += index[d] * strides[d];
      for (int64_t i = 0; i < inner; ++i) {
        double x = element(t.storage->dtype, base + size_t(offset + i * innerStride) * elemSize);
        if (first.size() < 5) first.push_back(x);
        line.sum += x;
        line.absSum += std::fabs(x);
      }
      for (size_t d = index.size(); d-- > 0;) {
        if (++index[d] < sizes[d]) break;
        index[d] = 0;
      }
    }
    auto showInt = [](const int64_t& i) { return std::to_string(i); };
    line.tensor = true;
    line.desc = std::string("tensor ") + dtypeName(t.storage->dtype) + " shape=" + listOf<int64_t>(t.sizes, showInt) +
                " stride=" + listOf<int64_t>(t.strides, showInt) + " offset=" + std::to_string(t.storageOffset) +
                " grad=" + (t.requiresGrad ? "1" : "0") + " storage=#" + std::to_string(storageId) +
                " first=" + listOf<double>(first, [](const double& d) { return fmt(d); });
  }

  StorageBytes bytesOf_;
  std::map<const StorageRef*, int> storageIds_;
};

Line expectedLine(const Json& node) {
  Line line;
  line.path = node["path"].text;
  const std::string& type = node["type"].text;
  if (type == "none") line.desc = "none";
  else if (type == "bool") line.desc = node["value"].boolean ? "bool true" : "bool false";
  else if (type == "int") line.desc = "int " + std::to_string(node["value"].integer());
  else if (type == "float") line.desc = "float " + fmt(node["value"].number());
  else if (type == "str") line.desc = "str " + node["value"].text;
  else if (type == "bytes") line.desc = "bytes " + node["value"].text;
  else if (type == "tensor") {
    auto ints = [](const Json& a) { return listOf<Json>(a.items, [](const Json& j) { return std::to_string(j.integer()); }); };
    line.tensor = true;
    line.sum = node["sum"].number();
    line.absSum = node["abs_sum"].number();
    line.desc = "tensor " + node["dtype"].text + " shape=" + ints(node["shape"]) + " stride=" + ints(node["stride"]) +
                " offset=" + std::to_string(node["offset"].integer()) + " grad=" + (node["requires_grad"].boolean ? "1" : "0") +
                " storage=#" + std::to_string(node["storage"].integer()) +
                " first=" + listOf<Json>(node["first"].items, [](const Json& j) { return fmt(j.number()); });
  } else {
    line.desc = type + " len=" + std::to_string(node["len"].integer());
  }
  return line;
}

// ---------------------------------------------------------------------------------------------
// Fixture-driven checks.

struct Loaded {
  ValuePtr root;
  StorageBytes bytesOf;
};

// kind "zip": an extracted archive dir (data.pkl + data/<key>); "legacy": a whole legacy file;
// "pickle": a bare pickle without storages.
Loaded load(const std::string& kind, const std::string& path) {
  Loaded loaded;
  if (kind == "legacy") {
    auto file = std::make_shared<std::vector<uint8_t>>(readFile(path));
    LegacyFile legacy = readLegacy(file->data(), file->size());
    loaded.root = legacy.root;
    auto offsets = legacy.storageOffsets;
    loaded.bytesOf = [file, offsets](const StorageRef& s) { return file->data() + offsets.at(s.key); };
  } else if (kind == "zip") {
    std::vector<uint8_t> pkl = readFile(path + "/data.pkl");
    loaded.root = unpickle(pkl.data(), pkl.size());
    auto cache = std::make_shared<std::map<std::string, std::vector<uint8_t>>>();
    loaded.bytesOf = [path, cache](const StorageRef& s) {
      auto [slot, fresh] = cache->emplace(s.key, std::vector<uint8_t>());
      if (fresh) slot->second = readFile(path + "/data/" + s.key);
      if (slot->second.size() != uint64_t(s.numel) * dtypeSize(s.dtype))
        throw std::runtime_error("record data/" + s.key + " has the wrong size for its storage");
      return slot->second.data();
    };
  } else {
    std::vector<uint8_t> pkl = readFile(path);
    loaded.root = unpickle(pkl.data(), pkl.size());
    loaded.bytesOf = [](const StorageRef&) -> const uint8_t* { throw std::runtime_error("no storages in a bare pickle"); };
  }
  return loaded;
}

ValuePtr resnetRoot;  // kept for the timing check

void testLoads(const std::string& dir, const Json& loads) {
  size_t values = 0, tensors = 0;
  for (const Json& entry : loads.items) {
    const std::string name = entry["name"].text;
    try {
      std::vector<uint8_t> head = readFile(dir + "/" + entry["file"].text);
      if (looksLikeZip(head.data(), head.size()) != (entry["kind"].text == "zip")) fail(name + ": looksLikeZip is wrong");
      Loaded loaded = load(entry["kind"].text, dir + "/" + entry["path"].text);
      if (name == "resnet18_zip.pt") resnetRoot = loaded.root;
      std::vector<Line> got;
      Flattener(loaded.bytesOf).walk(*loaded.root, "", got);
      const auto& want = entry["nodes"].items;
      if (got.size() != want.size())
        fail(name + ": " + std::to_string(got.size()) + " values, expected " + std::to_string(want.size()));
      for (size_t i = 0; i < std::min(got.size(), want.size()); ++i) {
        Line w = expectedLine(want[i]);
        if (got[i].path != w.path || got[i].desc != w.desc) {
          fail(name + ": value " + std::to_string(i) + "\n  got      " + got[i].path + ": " + got[i].desc +
               "\n  expected " + w.path + ": " + w.desc);
          break;
        }
        if (w.tensor && std::fabs(got[i].sum - w.sum) > 1e-9 * (w.absSum + 1)) {
          fail(name + ": " + w.path + ": sum " + fmt(got[i].sum) + ", expected " + fmt(w.sum));
          break;
        }
        tensors += w.tensor;
      }
      values += got.size();
      std::vector<uint8_t> raw = entry["kind"].text == "zip" ? readFile(dir + "/" + entry["path"].text + "/data.pkl") : head;
      std::string problem = checkOneInput(raw.data(), raw.size());
      if (!problem.empty()) fail(name + ": " + problem);
    } catch (const std::exception& e) {
      fail(name + ": " + e.what());
    }
  }
  std::printf("loads: %zu files, %zu values, %zu tensors matched torch's names/shapes/dtypes/strides/values\n",
              loads.items.size(), values, tensors);
}

void testRejects(const std::string& dir, const Json& rejects) {
  for (const Json& entry : rejects.items) {
    const std::string name = entry["name"].text, expect = entry["expect"].text;
    try {
      load(entry["kind"].text, dir + "/" + entry["path"].text);
      fail(name + ": was accepted");
    } catch (const FormatError& e) {
      if (std::string(e.what()).find(expect) == std::string::npos) fail(name + ": message lacks '" + expect + "': " + e.what());
      else std::printf("  rejected %-22s %s\n", name.c_str(), e.what());
    } catch (const std::exception& e) {
      fail(name + ": not a FormatError: " + e.what());
    }
  }
  std::printf("rejects: %zu malicious/malformed files refused with FormatError\n", rejects.items.size());
}

void testTruncations(const std::string& dir, const Json& entries) {
  size_t prefixes = 0;
  for (const Json& entry : entries.items) {
    std::vector<uint8_t> full = readFile(dir + "/" + entry["path"].text);
    bool legacy = entry["kind"].text == "legacy";
    for (size_t n = 0; n < full.size(); ++n, ++prefixes) {
      std::vector<uint8_t> prefix(full.begin(), full.begin() + long(n));  // exact size: ASan sees overreads
      try {
        legacy ? (void)readLegacy(prefix.data(), n) : (void)unpickle(prefix.data(), n);
        fail(entry["path"].text + ": prefix of " + std::to_string(n) + " bytes was accepted");
      } catch (const FormatError&) {
      } catch (const std::exception& e) {
        fail(entry["path"].text + ": prefix of " + std::to_string(n) + " bytes: " + e.what());
      }
    }
  }
  std::printf("truncations: all %zu proper prefixes refused with FormatError\n", prefixes);
}

void testMutations(const std::string& dir, const Json& entries) {
  std::mt19937_64 rng(12345);
  size_t inputs = 0;
  int parsed = 0;
  for (const Json& entry : entries.items) {
    const std::vector<uint8_t> original = readFile(dir + "/" + entry["path"].text);
    for (int round = 0; round < 4000; ++round, ++inputs) {
      std::vector<uint8_t> data = original;
      int edits = round < 3000 ? 1 : 1 + int(rng() % 8);  // single bytes, then a few bursts
      for (int e = 0; e < edits && !data.empty(); ++e) {
        size_t at = rng() % data.size();
        uint8_t value = uint8_t(rng());
        if (round % 10 == 9) data.erase(data.begin() + long(at));  // sometimes shift everything
        else data[at] = edits == 1 && value == data[at] ? uint8_t(value + 1) : value;
      }
      data.shrink_to_fit();
      std::string problem = checkOneInput(data.data(), data.size(), &parsed);
      if (!problem.empty()) {
        fail(entry["path"].text + " mutation " + std::to_string(round) + ": " + problem);
        break;
      }
    }
  }
  std::printf("mutations: %zu mutated inputs, %d parses succeeded, the rest FormatError; no crash, re-pickling stable\n",
              inputs, parsed);
}

// ---------------------------------------------------------------------------------------------
// Hand-made pickles for opcodes and failure modes the fixtures do not reach.

std::string le(uint64_t v, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += char(v >> (8 * i) & 0xFF);
  return out;
}
std::string bu(const std::string& s) { return "X" + le(s.size(), 4) + s; }  // BINUNICODE
std::string p2(const std::string& body) { return "\x80\x02" + body + "."; }

std::string errorOf(const std::string& bytes, const Limits& limits = {}) {
  try {
    parse(bytes, limits);
    return "(accepted)";
  } catch (const FormatError& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("(not a FormatError) ") + e.what();
  }
}

void expectError(const std::string& what, const std::string& bytes, const std::string& needle, const Limits& limits = {}) {
  std::string message = errorOf(bytes, limits);
  if (message.find(needle) == std::string::npos || message[0] == '(')
    fail(what + ": expected a FormatError containing '" + needle + "', got " + message);
}

void expectValue(const std::string& what, const std::string& bytes, const ValuePtr& want) {
  try {
    ValuePtr got = parse(bytes);
    if (!sameTree(*got, *want)) fail(what + ": unexpected value");
  } catch (const std::exception& e) {
    fail(what + ": " + e.what());
  }
}

std::string pid(const std::string& storageType, const std::string& key, int numel, const std::string& extra = "") {
  return "(" + bu("storage") + "ctorch\n" + storageType + "\n" + bu(key) + bu("cpu") + "K" + char(numel) + extra + "tQ";
}

ValuePtr tensorOf(std::shared_ptr<StorageRef> s, std::vector<int64_t> sizes, std::vector<int64_t> strides,
                  int64_t offset = 0, bool grad = false) {
  TensorRef t;
  t.storage = std::move(s);
  t.sizes = std::move(sizes);
  t.strides = std::move(strides);
  t.storageOffset = offset;
  t.requiresGrad = grad;
  return makeTensor(std::move(t));
}

std::shared_ptr<StorageRef> storageOf(const std::string& key, DType dtype, int64_t numel) {
  auto s = std::make_shared<StorageRef>();
  s->key = key;
  s->dtype = dtype;
  s->numel = numel;
  return s;
}

// Whole pickled models, hand-made: the forms torch.save writes and the ones it never does.
std::string moduleState(const std::string& params, const std::string& buffers, const std::string& modules,
                        const std::string& extra = "") {
  auto odict = [](const std::string& items) {
    return "ccollections\nOrderedDict\n)R" + (items.empty() ? "" : "(" + items + "u");
  };
  return "}(" + bu("training") + "\x88" + bu("_parameters") + odict(params) + bu("_buffers") + odict(buffers) +
         bu("_modules") + odict(modules) + extra + "u";
}
std::string newModule(const std::string& cls) { return "ctorch.nn.modules." + cls + "\n)\x81"; }
std::string tensorPickle(const std::string& key, int numel, bool parameter = false) {
  std::string t = "ctorch._utils\n_rebuild_tensor_v2\n(" + pid("FloatStorage", key, numel) + "K\x00(K"s + char(numel) +
                  "tK\x01\x85\x89" "ccollections\nOrderedDict\n)RtR";
  return parameter ? "ctorch._utils\n_rebuild_parameter\n" + t + "\x88" "ccollections\nOrderedDict\n)R\x87R" : t;
}

void testModules() {
  auto w = storageOf("w", DType::Float32, 2), b = storageOf("b", DType::Float32, 3), k = storageOf("k", DType::Float32, 1);
  auto s = [](const char* text) { return makeString(text); };
  // A Linear-like leaf: a parameter, a None parameter, a persistent and a non-persistent buffer.
  std::string leaf = newModule("linear\nLinear") +
                     moduleState(bu("weight") + tensorPickle("w", 2, true) + bu("bias") + "N",
                                 bu("kept") + tensorPickle("k", 1) + bu("scratch") + tensorPickle("b", 3),
                                 "", bu("_non_persistent_buffers_set") + "c__builtin__\nset\n]" + bu("scratch") + "a\x85R") +
                     "b";
  ValuePtr leafDict = makeDict({{s("weight"), tensorOf(w, {2}, {1})}, {s("kept"), tensorOf(k, {1}, {1})}}, true);
  expectValue("a module object reads as its state_dict (detached, non-persistent buffers left out)", p2(leaf), leafDict);
  // A container: own parameter first, then each child under "name.", None children skipped;
  // one child object used twice (memo) appears under both names, like state_dict().
  std::string outer = newModule("container\nSequential") +
                      moduleState(bu("own") + tensorPickle("b", 3, true), "",
                                  bu("0") + leaf + "q\x07" + bu("gap") + "N" + bu("1") + "h\x07",
                                  bu("_norm_layer") + "ctorch.nn.modules.batchnorm\nBatchNorm2d\n") +
                      "b";
  ValuePtr outerDict = makeDict({{s("own"), tensorOf(b, {3}, {1})}, {s("0.weight"), tensorOf(w, {2}, {1})},
                                 {s("0.kept"), tensorOf(k, {1}, {1})}, {s("1.weight"), tensorOf(w, {2}, {1})},
                                 {s("1.kept"), tensorOf(k, {1}, {1})}}, true);
  expectValue("nested modules flatten with dotted names", p2(outer), outerDict);
  expectValue("a module inside a checkpoint dict", p2("}(" + bu("model") + outer + bu("epoch") + "K\x03u"),
              makeDict({{s("model"), outerDict}, {s("epoch"), makeInt(3)}}));
  expectValue("a module inside a tuple", p2(leaf + "\x85"), makeTuple({leafDict}));
  expectValue("protocol 1: copy_reg._reconstructor(cls, object, None)",
              p2("ccopy_reg\n_reconstructor\n(ctorch.nn.modules.linear\nLinear\nc__builtin__\nobject\nNtR" +
                 moduleState("", "", "") + "b"),
              makeDict({}, true));
  expectValue("REDUCE with no arguments", p2("ctorchvision.models.resnet\nResNet\n)R" + moduleState("", "", "") + "b"),
              makeDict({}, true));
  expectValue("legacy ('module', cls, file, source) persistent id",
              p2("(" + bu("module") + "ctorch.nn.parallel.data_parallel\nDataParallel\nN" + bu("src") + "tQ)\x81" +
                 moduleState("", "", "") + "b"),
              makeDict({}, true));
  expectValue("a module class as data reads as its name",
              p2("]ctorchvision.ops.misc\nConv2dNormActivation\na"), makeList({s("torchvision.ops.misc.Conv2dNormActivation")}));

  const std::string resave = "re-save its weights with torch.save(model.state_dict(), path)";
  expectError("a class of the user's", p2("c__main__\nMyNet\n)\x81"), "global '__main__.MyNet' is not allowed");
  expectError("the refusal says what to do", p2("c__main__\nMyNet\n)\x81"), resave);
  expectError("a lowercase name under torch.nn.modules", p2("ctorch.nn.modules.module\nregister_module_forward_hook\n"),
              "is not allowed");
  expectError("a look-alike module", p2("ctorch.nn.modulesx\nLinear\n"), "is not allowed");
  expectError("an empty module path", p2("ctorch.nn.modules.\nLinear\n"), "is not allowed");
  expectError("a module path with ..", p2("ctorch.nn.modules..linear\nLinear\n"), "is not allowed");
  expectError("torch.nn itself", p2("ctorch.nn\nLinear\n"), "is not allowed");
  expectError("torch.nn.parallel beyond DataParallel",
              p2("ctorch.nn.parallel.distributed\nDistributedDataParallel\n"), "is not allowed");
  expectError("a module created with arguments", p2("ctorch.nn.modules.linear\nLinear\nK\x02\x85\x81"), resave);
  expectError("REDUCE with arguments", p2("ctorch.nn.modules.linear\nLinear\nK\x02\x85R"), "only read as torch.save");
  expectError("_reconstructor of another base", p2("ccopyreg\n_reconstructor\n(ctorch.nn.modules.linear\nLinear\n"
                                                   "ctorch.nn.modules.linear\nLinear\nNtR"), "(module class, object, None)");
  expectError("object()", p2("cbuiltins\nobject\n)R"), "argument of copyreg._reconstructor");
  expectError("used before BUILD (a cycle)",
              p2(newModule("linear\nLinear") + "q\x00"s + moduleState("", "", bu("self") + "h\x00"s) + "b"),
              "used before BUILD set its state");
  expectError("never built", p2(newModule("linear\nLinear")), "used before BUILD");
  expectError("BUILD twice", p2(newModule("linear\nLinear") + moduleState("", "", "") + "b" + moduleState("", "", "") + "b"),
              "BUILD twice");
  expectError("state is not a dict", p2(newModule("linear\nLinear") + "]b"), "must be a dict");
  expectError("not a Module's state", p2(newModule("linear\nLinear") + "}(" + bu("_parameters") + "}u" + "b"),
              "has no '_buffers': not a torch.nn.Module");
  expectError("a parameter that is not a tensor",
              p2(newModule("linear\nLinear") + moduleState(bu("weight") + "K\x01", "", "") + "b"), "not a tensor");
  expectError("a child that is not a module",
              p2(newModule("container\nSequential") + moduleState("", "", bu("0") + "}") + "b"), "is not a module object");
  expectError("an int parameter name", p2(newModule("linear\nLinear") + moduleState("K\x01N", "", "") + "b"), "is not a str");
  expectError("a bad non-persistent set",
              p2(newModule("linear\nLinear") + moduleState("", "", "", bu("_non_persistent_buffers_set") + "K\x01") + "b"),
              "must be a set");
  // Memo-shared children may not multiply key building beyond the work budget: a chain of
  // containers each holding the previous one 64 times.
  std::string chain = newModule("linear\nLinear") + moduleState(bu(std::string(200, 'p')) + tensorPickle("w", 2), "", "") +
                      "bq\x00"s;
  for (int level = 1; level < 12; ++level) {
    std::string children;
    for (int c = 0; c < 64; ++c) children += bu(std::to_string(c)) + "h\x00"s;
    chain += "0" + newModule("container\nSequential") + moduleState("", "", children) + "bq\x00"s;
  }
  expectError("module fan-out", p2(chain), "values in the tree");
}

void testHandcrafted() {
  size_t before = size_t(failures);
  // Opcodes from protocol 0/1 and Python 2 pickles.
  expectValue("py2 strings", p2("](S'a\\n\\x41\\'b\"'\nS\"it's\"\nT" + le(3, 4) + "xyzU\x02hie"),
              makeList({makeString("a\nA'b\""), makeString("it's"), makeString("xyz"), makeString("hi")}));
  expectError("bad py2 escape", p2("S'\\q'\n"), "not a quoted string literal");
  expectValue("protocol 0 scalars", "(I01\nI-5\nL123L\nF1.5\nVa\\u00e9\\U0001f600\nl.",
              makeList({makeBool(true), makeInt(-5), makeInt(123), makeFloat(1.5), makeString("a\xc3\xa9\xf0\x9f\x98\x80")}));
  expectValue("DUP POP POP_MARK", p2("K\x01" "2" "0" "(K\x02K\x03" "1" "\x85"), makeTuple({makeInt(1)}));
  expectValue("LONG4 and sign-extended LONG1", p2("\x8b" + le(2, 4) + "\xff\x7f" "\x8a\x09" + std::string(9, '\xff') + "\x86"),
              makeTuple({makeInt(32767), makeInt(-1)}));
  expectValue("8-byte lengths", p2("\x8d" + le(2, 8) + "hi" "\x8e" + le(1, 8) + std::string(1, '\0') + "\x86"),
              makeTuple({makeString("hi"), makeBytes(std::string(1, '\0'))}));
  expectValue("torch.Size", p2("ctorch\nSize\nK\x02K\x03\x86\x85R"), makeTuple({makeInt(2), makeInt(3)}));
  expectValue("NEWOBJ OrderedDict + BUILD", p2("ccollections\nOrderedDict\n)\x81}b"), makeDict({}, true));
  expectValue("duplicate key: last wins", p2("}(" + bu("a") + "K\x01" + bu("a") + "K\x02u"),
              makeDict({{makeString("a"), makeInt(2)}}));
  expectValue("int keys", p2("}(K\x00N\x8a\x01\xffNu"s), makeDict({{makeInt(0), makeNone()}, {makeInt(-1), makeNone()}}));
  expectValue("bytes()", p2("c__builtin__\nbytes\n)R"), makeBytes(""));
  expectError("bytes(x)", p2("cbuiltins\nbytes\nK\x05\x85R"), "bytes() is only accepted without arguments");
  expectValue("_codecs.encode", p2("c_codecs\nencode\n" + bu("\xc3\xbf" "a") + bu("latin1") + "\x86R"), makeBytes("\xff" "a"));
  expectValue("legacy 6-tuple persistent id and _rebuild_tensor",
              p2("ctorch._utils\n_rebuild_tensor\n(" + pid("FloatStorage", "0", 4, "N") + "K\x01K\x03\x85K\x01\x85tR"),
              tensorOf(storageOf("0", DType::Float32, 4), {3}, {1}, 1));
  expectValue("_rebuild_parameter", p2("ctorch._utils\n_rebuild_parameter\nctorch._utils\n_rebuild_tensor\n(" +
                                       pid("LongStorage", "k", 2) + "K\x00K\x02\x85K\x01\x85tR\x88}\x87R"s),
              tensorOf(storageOf("k", DType::Int64, 2), {2}, {1}, 0, true));

  // Refusals.
  expectError("integer over 64 bits", p2("\x8a\x09" + std::string(8, '\0') + "\x01"), "does not fit in 64 bits");
  expectError("NEWOBJ of a rebuilder", p2("ctorch._utils\n_rebuild_tensor_v2\n)\x81"),
              "NEWOBJ of torch._utils._rebuild_tensor_v2 is not allowed");
  expectValue("EMPTY_SET + ADDITEMS", p2("\x8f(K\x01K\x02\x90"), makeList({makeInt(1), makeInt(2)}));
  expectValue("FROZENSET", p2("(K\x03\x91"), makeList({makeInt(3)}));
  expectValue("set([...])", p2("c__builtin__\nset\n]K\x04" "a\x85R"), makeList({makeInt(4)}));
  expectError("set(x)", p2("cbuiltins\nset\nK\x04\x85R"), "set takes () or one list");
  expectError("ADDITEMS on a dict", p2("}(K\x01\x90"), "needs a list");
  expectError("INST", "(i__builtin__\nobject\n.", "opcode 0x69 (INST) at byte 1");
  expectError("unknown opcode", p2("\xff"), "opcode 0xff (unknown) at byte 2");
  expectError("self cycle", p2("]q\x00h\x00"s "a"), "cannot contain itself");
  expectError("two-list cycle", p2("]q\x00]q\x01h\x00"s "a" "a"), "reference cycles are not supported");
  expectError("dict cycle", p2("}q\x00"s + bu("k") + "]h\x00"s "a" "s"), "reference cycles are not supported");
  std::string laughs = "]";
  for (int i = 0; i < 60; ++i) laughs += "q\x00"s "0(h\x00h\x00l"s;
  expectError("exponential DAG", p2(laughs), "maxTreeValues");
  expectError("huge BINUNICODE length", p2("X\xff\xff\xff\xff"), "truncated: needs 4294967295 bytes");
  expectError("huge BINUNICODE8 length", p2("\x8d" + le(uint64_t(1) << 62, 8)), "truncated");
  expectError("huge LONG4 length", p2("\x8b\xff\xff\xff\x7f"), "truncated");
  expectError("negative BINSTRING length", p2("T\xff\xff\xff\xff"), "negative length");
  expectError("bad UTF-8", p2(bu("\xff")), "not valid UTF-8");
  expectError("memo miss", p2("h\x05"), "memo entry 5 was never stored");
  expectError("stack underflow", p2("a"), "stack underflow");
  expectError("empty STOP", ".", "stack underflow");
  expectError("no STOP", "\x80\x02N", "no STOP");
  expectError("empty input", "", "pickle: at byte 0: unexpected end of data");
  expectError("MARK underflow", p2("(a"), "stack underflow");
  expectError("text persistent id", "Pfoo\n.", "text persistent ids are not supported");
  expectError("float dict key", p2("}G" + std::string(8, '\0') + "Ns"), "dict keys must be str or int, got float");
  expectError("BUILD on a plain dict", p2("}}b"), "BUILD is only accepted on a collections.OrderedDict");
  expectError("global in a list", p2("]ctorch\nFloatStorage\na"), "a global cannot be used as a list item");
  expectError("non-latin1 _codecs.encode", p2("c_codecs\nencode\n" + bu("\xe2\x98\x83") + bu("latin1") + "\x86R"), "not latin-1");
  expectError("utf-8 _codecs.encode", p2("c_codecs\nencode\n" + bu("a") + bu("utf-8") + "\x86R"), "only latin1");
  expectError("storage called", p2("ctorch\nFloatStorage\n)R"), "torch.FloatStorage cannot be called");
  expectError("storage view", p2(pid("FloatStorage", "0", 4, "(" + bu("0") + "K\x00K\x04t"s)), "storage views");
  expectError("not a storage pid", p2("(" + bu("module") + "ctorch\nFloatStorage\nK\x01tQ"), "a persistent id must be");
  expectError("int pid", p2("K\x01Q"), "a persistent id must be");
  expectError("key reuse", p2("(" + pid("FloatStorage", "0", 4) + pid("LongStorage", "0", 4) + "t"), "named twice");
  expectError("key path", p2(pid("FloatStorage", "../x", 4)), "is not a plain name");
  expectError("storage result", p2(pid("FloatStorage", "0", 4)), "a storage cannot be used as the pickle's result");
  expectError("stack limit", p2(std::string(20, 'N') + "\x87"), "maxStackItems", Limits{1000, 10});
  std::string deep;
  for (int i = 0; i < 1001; ++i) deep += "]";
  expectError("1001 nested lists", p2(deep + std::string(1000, 'a')), "containers nested deeper than the limit of 1000");
  expectValue("1000 nested lists", p2(deep.substr(1) + std::string(999, 'a')), [] {
    ValuePtr v = makeList({});
    for (int i = 1; i < 1000; ++i) v = makeList({v});
    return v;
  }());
  // Memo references may not amplify work: one 100 kB key inserted into thousands of dicts.
  std::string amplify = bu(std::string(100000, 'k')) + "q\x00"s "0";
  for (int i = 0; i < 5000; ++i) amplify += "}h\x00N"s "s0";
  expectError("work amplification", p2(amplify + "N"), "too much work");

  // Tensor metadata checks, on pickles from the writer (which does not validate).
  auto s4 = storageOf("0", DType::Float32, 4);
  auto tensorError = [&](const std::string& what, ValuePtr t, const std::string& needle) {
    expectError(what, pickle(*makeList({t})), needle);
  };
  tensorError("past the storage", tensorOf(s4, {5}, {1}), "tensor reaches element 4 but storage '0' has 4 elements");
  tensorError("offset past the storage", tensorOf(s4, {2}, {1}, 3), "reaches element 4");
  tensorError("strided past the storage", tensorOf(s4, {2, 2}, {1, 3}), "reaches element 4");
  tensorError("negative stride", tensorOf(s4, {2}, {-1}), "negative size or stride");
  tensorError("negative offset", tensorOf(s4, {1}, {1}, -1), "negative storage offset");
  expectValue("valid 2-d tensor", pickle(*tensorOf(s4, {2, 2}, {2, 1})), tensorOf(s4, {2, 2}, {2, 1}));
  tensorError("size overflow", tensorOf(s4, {int64_t(1) << 40, int64_t(1) << 40}, {0, 0}), "overflows int64");
  tensorError("extent overflow", tensorOf(s4, {3}, {int64_t(1) << 62}), "overflows int64");
  tensorError("huge storage", tensorOf(storageOf("0", DType::Float32, int64_t(1) << 62), {1}, {1}), "too large element count");
  tensorError("negative numel", tensorOf(storageOf("0", DType::Float32, -1), {1}, {1}), "too large element count");
  expectValue("empty tensor on an empty storage", pickle(*tensorOf(storageOf("e", DType::Float32, 0), {0, 3}, {3, 1})),
              tensorOf(storageOf("e", DType::Float32, 0), {0, 3}, {3, 1}));
  expectValue("expanded tensor", pickle(*tensorOf(s4, {1000000, 4}, {0, 1})), tensorOf(s4, {1000000, 4}, {0, 1}));

  // Writer limits: too deep, and a cycle made with shared_ptrs.
  ValuePtr tooDeep = makeList({});
  for (int i = 0; i < 1000; ++i) tooDeep = makeList({tooDeep});
  try { pickle(*tooDeep); fail("writer: 1001 nested lists accepted"); } catch (const FormatError&) {}
  ValuePtr cyclic = makeList({});
  cyclic->items.push_back(cyclic);
  try { pickle(*cyclic); fail("writer: cycle accepted"); } catch (const FormatError&) {}
  cyclic->items.clear();
  testModules();
  std::printf("handcrafted: opcodes, refusals and tensor checks: %s\n", size_t(failures) == before ? "OK" : "FAILED");
}

// ---------------------------------------------------------------------------------------------
// Round trip: trees with tensors -> pickle() -> files that make_fixtures.py --check-roundtrip
// zips like torch.save and loads with torch; also unpickled here.

template <class T>
std::string pack(std::initializer_list<T> values) {
  std::string out;
  for (T v : values) out.append(reinterpret_cast<const char*>(&v), sizeof v);
  return out;
}

void testRoundTrip(const std::string& outDir) {
  std::map<std::string, std::string> storageBytes;
  auto storage = [&](const std::string& key, DType dtype, std::string bytes) {
    storageBytes[key] = bytes;
    return storageOf(key, dtype, int64_t(bytes.size() / dtypeSize(dtype)));
  };
  auto s0 = storage("0", DType::Float32, pack<float>({-1, -0.5, 0, 0.5, 1, 1.5}));
  auto s1 = storage("1", DType::Float32, pack<float>({10, 11, 12}));
  auto s12 = storage("12", DType::Float32, pack<float>({0.25, 0.5, 0.75, 1}));
  auto s = [](const char* k) { return makeString(k); };
  ValuePtr weights = makeDict({
      {s("a.weight"), tensorOf(s0, {2, 3}, {3, 1})},
      {s("a.bias"), tensorOf(s1, {3}, {1})},
      {s("steps"), tensorOf(storage("2", DType::Int64, pack<int64_t>({7})), {}, {})},
      {s("half"), tensorOf(storage("3", DType::Float16, pack<uint16_t>({0x3C00, 0x4000, 0xC000, 0x3800})), {4}, {1})},
      {s("mask"), tensorOf(storage("4", DType::Bool, pack<uint8_t>({1, 0, 1, 1, 0})), {5}, {1})},
      {s("view"), tensorOf(s0, {3}, {1}, 3)},
      {s("t"), tensorOf(s0, {3, 2}, {1, 3})},
      {s("bf16"), tensorOf(storage("5", DType::BFloat16, pack<uint16_t>({0x3F80, 0xBFC0})), {2}, {1})},
      {s("i32"), tensorOf(storage("6", DType::Int32, pack<int32_t>({-1, 0, 2147483647})), {3}, {1})},
      {s("i16"), tensorOf(storage("7", DType::Int16, pack<int16_t>({-32768, 5})), {2}, {1})},
      {s("i8"), tensorOf(storage("8", DType::Int8, pack<int8_t>({-128, 127})), {2}, {1})},
      {s("u8"), tensorOf(storage("9", DType::UInt8, pack<uint8_t>({0, 128, 255})), {3}, {1})},
      {s("f64"), tensorOf(storage("10", DType::Float64, pack<double>({0.1, -2.5})), {2}, {1})},
      {s("empty"), tensorOf(storage("11", DType::Float32, ""), {0}, {1})},
      {s("param"), tensorOf(s1, {3}, {1}, 0, true)},
      {s("big"), tensorOf(s12, {2, 2}, {2, 1})},
      {s("expand"), tensorOf(s1, {4, 3}, {0, 1})}}, true);
  std::vector<ValuePtr> ints;
  for (int64_t v : {int64_t(0), int64_t(255), int64_t(256), int64_t(65535), int64_t(65536), int64_t(-1), int64_t(-129),
                    int64_t(INT32_MAX), int64_t(INT32_MAX) + 1, int64_t(INT32_MIN), int64_t(INT32_MIN) - 1,
                    int64_t(1) << 40, INT64_MIN, INT64_MAX})
    ints.push_back(makeInt(v));
  std::vector<std::pair<ValuePtr, ValuePtr>> common = {
      {s("weights"), weights},
      {s("epoch"), makeInt(3)},
      {s("ints"), makeList(ints)},
      {s("name"), s("r\xc3\xa9snet \xe2\x98\x83 \xf0\x9f\x98\x80")},
      {s("flag"), makeBool(true)},
      {s("off"), makeBool(false)},
      {s("nothing"), makeNone()},
      {s("pair"), makeTuple({makeInt(1), s("x")})},
      {s("tuple4"), makeTuple({makeInt(1), makeInt(2), makeInt(3), makeInt(4)})},
      {s("empty_tuple"), makeTuple({})},
      {s("list"), makeList({makeInt(0), makeInt(1), makeList({makeInt(2), makeList({})})})},
      {s("optimizer"),
       makeDict({{s("state"), makeDict({{makeInt(0), makeDict({{s("momentum_buffer"), tensorOf(s12, {2, 2}, {2, 1})}})}})},
                 {s("param_groups"), makeList({makeDict({{s("params"), makeList({makeInt(0), makeInt(1)})}})})}})}};
  ValuePtr weightsTree = makeDict(common);
  auto fullEntries = common;
  fullEntries.push_back({s("lr"), makeFloat(0.125)});
  fullEntries.push_back({s("neg_zero"), makeFloat(-0.0)});
  fullEntries.push_back({s("blob"), makeBytes(std::string("\x00\xff abc", 6))});
  fullEntries.push_back({s("empty_blob"), makeBytes("")});
  ValuePtr fullTree = makeDict(fullEntries);

  namespace fs = std::filesystem;
  fs::create_directories(outDir + "/storages");
  for (const auto& [key, bytes] : storageBytes) writeFile(outDir + "/storages/" + key, bytes);
  for (const auto& [name, tree] : {std::pair<const char*, ValuePtr>{"full", fullTree}, {"weights", weightsTree}}) {
    std::string bytes = pickle(*tree);
    writeFile(outDir + "/" + name + ".pkl", bytes);
    ValuePtr back = parse(bytes);
    if (!sameTree(*tree, *back)) fail(std::string("round trip of ") + name + " through unpickle differs");
    // Each global is spelled out once and then fetched from the memo.
    size_t spelled = 0;
    for (size_t at = 0; (at = bytes.find("_rebuild_tensor_v2", at)) != std::string::npos; ++at) ++spelled;
    if (spelled != 1) fail("the writer spelled _rebuild_tensor_v2 " + std::to_string(spelled) + " times");
    // Tensors naming one key must share one StorageRef after reading.
    const auto& w = back->entries[0].second->entries;
    if (w[0].second->tensor.storage != w[5].second->tensor.storage) fail("views lost their shared storage");
  }
  std::printf("roundtrip: pickle() -> unpickle() identical; wrote %s for torch.load\n", outDir.c_str());
}

void testTiming() {
  if (!resnetRoot) return fail("timing: resnet18 fixture missing");
  const int runs = 200;
  std::string bytes;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < runs; ++i) bytes = pickle(*resnetRoot);
  double writeUs = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() / runs;
  start = std::chrono::steady_clock::now();
  for (int i = 0; i < runs; ++i) parse(bytes);
  double readUs = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() / runs;
  std::printf("timing (sanitized build): resnet18 state_dict, %zu entries, %zu bytes: pickle %.0f us, unpickle %.0f us\n",
              resnetRoot->entries.size(), bytes.size(), writeUs, readUs);
  if (writeUs > 1000) fail("pickling a resnet18 state_dict took over 1 ms");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s FIXTURE_DIR ROUNDTRIP_DIR\n", argv[0]);
    return 2;
  }
  const std::string fixtures = argv[1];
  try {
    std::vector<uint8_t> text = readFile(fixtures + "/expected.json");
    Json expected = JsonParser(std::string(text.begin(), text.end())).parse();
    auto timed = [](const std::function<void()>& section) {
      auto start = std::chrono::steady_clock::now();
      section();
      std::printf("  (%.1f s)\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    };
    timed([&] { testLoads(fixtures, expected["loads"]); });
    timed([&] { testRejects(fixtures, expected["rejects"]); });
    timed([&] { testTruncations(fixtures, expected["truncate"]); });
    timed([&] { testMutations(fixtures, expected["fuzz"]); });
    timed([&] { testHandcrafted(); });
    timed([&] { testRoundTrip(argv[2]); });
    timed([&] { testTiming(); });
  } catch (const std::exception& e) {
    fail(std::string("unexpected exception: ") + e.what());
  }
  std::printf("%s: %d failure(s)\n", failures ? "FAILED" : "PASSED", failures);
  return failures ? 1 : 0;
}

#endif  // FINETORCH_FUZZER
