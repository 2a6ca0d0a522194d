// torch.save files in and out: the zip format (torch >= 1.6) through libtorch's own zip reader and
// writer, the legacy pre-1.6 format, both through the restricted pickle code in formats/ that never
// executes anything from the file. Saves are atomic: temp file, fsync, rename.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <unordered_map>

#include <caffe2/serialize/inline_container.h>
#include <caffe2/serialize/versions.h>

#include "addon.h"
#include "errors.h"
#include "formats/pickle.h"
#include "formats/zip.h"
#include "tensor.h"

namespace finetorch {

namespace fmt = formats;

namespace {

c10::ScalarType toScalarType(fmt::DType dtype) {
  switch (dtype) {
    case fmt::DType::Float32: return c10::kFloat;
    case fmt::DType::Float64: return c10::kDouble;
    case fmt::DType::Float16: return c10::kHalf;
    case fmt::DType::BFloat16: return c10::kBFloat16;
    case fmt::DType::Int64: return c10::kLong;
    case fmt::DType::Int32: return c10::kInt;
    case fmt::DType::Int16: return c10::kShort;
    case fmt::DType::Int8: return c10::kChar;
    case fmt::DType::UInt8: return c10::kByte;
    case fmt::DType::Bool: return c10::kBool;
  }
  throw std::runtime_error("unsupported dtype");
}

fmt::DType toFormatDType(c10::ScalarType type) {
  switch (type) {
    case c10::kFloat: return fmt::DType::Float32;
    case c10::kDouble: return fmt::DType::Float64;
    case c10::kHalf: return fmt::DType::Float16;
    case c10::kBFloat16: return fmt::DType::BFloat16;
    case c10::kLong: return fmt::DType::Int64;
    case c10::kInt: return fmt::DType::Int32;
    case c10::kShort: return fmt::DType::Int16;
    case c10::kChar: return fmt::DType::Int8;
    case c10::kByte: return fmt::DType::UInt8;
    case c10::kBool: return fmt::DType::Bool;
    default: throw std::runtime_error(std::string("cannot save tensors of dtype ") + c10::toString(type));
  }
}

struct Loaded {
  std::string format;  // "zip" or "legacy"
  fmt::ValuePtr root;
  std::unordered_map<const fmt::Value*, torch::Tensor> tensors;
};

// Collects every tensor node of the tree (iteratively: the tree came from an untrusted file).
std::vector<const fmt::Value*> tensorNodes(const fmt::ValuePtr& root) {
  std::vector<const fmt::Value*> found, stack{root.get()};
  while (!stack.empty()) {
    const fmt::Value* v = stack.back();
    stack.pop_back();
    if (!v) continue;
    if (v->kind == fmt::Value::Kind::Tensor) found.push_back(v);
    for (auto& item : v->items) stack.push_back(item.get());
    for (auto& entry : v->entries) {
      stack.push_back(entry.first.get());
      stack.push_back(entry.second.get());
    }
  }
  return found;
}

torch::Tensor view(const torch::Tensor& storage, const fmt::TensorRef& ref) {
  auto tensor = storage.as_strided(ref.sizes, ref.strides, ref.storageOffset);
  return ref.requiresGrad ? tensor.detach().requires_grad_(true) : tensor;
}

int64_t fileSize(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) throw std::runtime_error(std::string(std::strerror(errno)));
  if (!S_ISREG(info.st_mode)) throw std::runtime_error("not a regular file");
  return static_cast<int64_t>(info.st_size);
}

// Checks made before PyTorchStreamReader sees the file:
//  * formats/zip.h's directory check: its constructor already reads the "version" record, and it
//    allocates every record's claimed uncompressed size before reading it. After the check every
//    record is stored, inside the file and disjoint from the others, so all the records a load reads
//    together take at most the file's size.
//  * what the constructor itself checks (a first entry inside a folder, a readable "version" record
//    libtorch supports): libtorch 1.13 leaks miniz's reader state (~0.5 KB) whenever its
//    constructor throws, so such files are refused here instead (found by LeakSanitizer).
void checkZipFile(const std::string& path, int64_t size) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(std::strerror(errno));
  auto readAt = [fd](uint64_t offset, void* out, size_t n) {
    size_t got = 0;
    while (got < n) {
      ssize_t r = ::pread(fd, static_cast<char*>(out) + got, n - got, static_cast<off_t>(offset + got));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return false;
      got += static_cast<size_t>(r);
    }
    return true;
  };
  try {
    auto entries = fmt::checkZipArchive(static_cast<uint64_t>(size), readAt);
    if (entries.empty()) throw std::runtime_error("zip archive has no entries: not a torch.save file");
    auto slash = entries[0].name.find('/');
    if (slash == std::string::npos) {
      throw std::runtime_error("zip archive's first entry is not inside a folder: not a torch.save file");
    }
    auto lower = [](std::string text) {
      for (char& c : text) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
      return text;
    };
    const std::string prefix = lower(entries[0].name.substr(0, slash + 1));
    const fmt::ZipEntry* version = nullptr;
    for (const char* name : {".data/version", "version"}) {  // the order libtorch looks them up in
      for (const auto& e : entries) if (lower(e.name) == prefix + name) version = &e;
      if (version) break;
    }
    if (!version) throw std::runtime_error("zip archive has no version record: not a torch.save file");
    if (version->size > 64) throw std::runtime_error("the archive's version record is not a version number");
    std::string text(static_cast<size_t>(version->size), '\0');
    if (!text.empty() && !readAt(version->dataOffset, text.data(), text.size())) throw std::runtime_error("read failed");
    if (fmt::zipCrc32(reinterpret_cast<const uint8_t*>(text.data()), text.size()) != version->crc32) {
      throw std::runtime_error("zip archive: the version record fails its CRC-32 check");
    }
    uint64_t number = 0;
    try {
      number = std::stoull(text);  // what libtorch parses it with
    } catch (const std::exception&) {
      throw std::runtime_error("the archive's version record is not a version number");
    }
    if (number < caffe2::serialize::kMinSupportedFileFormatVersion ||
        number > caffe2::serialize::kMaxSupportedFileFormatVersion) {
      throw std::runtime_error("torch.save file format version " + std::to_string(number) +
                               " is not supported by this libtorch (it reads versions " +
                               std::to_string(caffe2::serialize::kMinSupportedFileFormatVersion) + " to " +
                               std::to_string(caffe2::serialize::kMaxSupportedFileFormatVersion) + ")");
    }
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
}

Loaded loadZip(const std::string& path, int64_t size) {
  checkZipFile(path, size);
  caffe2::serialize::PyTorchStreamReader reader(path);
  if (!reader.hasRecord("data.pkl")) throw std::runtime_error("zip archive has no data.pkl: not a torch.save file");
  if (reader.hasRecord("byteorder")) {
    auto [order, orderSize] = reader.getRecord("byteorder");
    if (std::string(static_cast<const char*>(order.get()), orderSize) != "little") {
      throw std::runtime_error("big-endian torch.save files are not supported");
    }
  }
  auto [pickleData, pickleSize] = reader.getRecord("data.pkl");
  fmt::Limits limits;
  limits.maxStorageBytes = size;  // torch stores tensor data uncompressed: no storage exceeds the file
  Loaded loaded{"zip", fmt::unpickle(static_cast<const uint8_t*>(pickleData.get()), pickleSize, limits), {}};
  std::unordered_map<std::string, torch::Tensor> storages;
  for (const fmt::Value* node : tensorNodes(loaded.root)) {
    const auto& ref = node->tensor;
    auto& storage = storages[ref.storage->key];
    if (!storage.defined()) {
      std::string record = "data/" + ref.storage->key;
      if (!reader.hasRecord(record)) throw std::runtime_error("storage '" + ref.storage->key + "' is missing from the archive");
      size_t need = static_cast<size_t>(ref.storage->numel) * fmt::dtypeSize(ref.storage->dtype);
      auto [data, bytes] = reader.getRecord(record);
      if (bytes < need) {
        throw std::runtime_error("storage '" + ref.storage->key + "' holds " + std::to_string(bytes) + " bytes but " +
                                 std::to_string(need) + " are needed");
      }
      storage = torch::empty({ref.storage->numel}, torch::TensorOptions().dtype(toScalarType(ref.storage->dtype)));
      if (need) std::memcpy(storage.data_ptr(), data.get(), need);
    }
    loaded.tensors[node] = view(storage, ref);
  }
  return loaded;
}

Loaded loadLegacy(const std::string& path, int64_t size) {
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  std::ifstream in(path, std::ios::binary);
  if (!in.read(reinterpret_cast<char*>(bytes.data()), size)) throw std::runtime_error("read failed");
  auto legacy = fmt::readLegacy(bytes.data(), bytes.size());
  Loaded loaded{"legacy", legacy.root, {}};
  std::unordered_map<std::string, torch::Tensor> storages;
  for (const fmt::Value* node : tensorNodes(loaded.root)) {
    const auto& ref = node->tensor;
    auto& storage = storages[ref.storage->key];
    if (!storage.defined()) {
      auto offset = legacy.storageOffsets.find(ref.storage->key);
      if (offset == legacy.storageOffsets.end()) throw std::runtime_error("storage '" + ref.storage->key + "' has no data");
      storage = torch::empty({ref.storage->numel}, torch::TensorOptions().dtype(toScalarType(ref.storage->dtype)));
      // copied out of the file buffer: element alignment is not guaranteed there
      std::memcpy(storage.data_ptr(), bytes.data() + offset->second, storage.nbytes());
    }
    loaded.tensors[node] = view(storage, ref);
  }
  return loaded;
}

Napi::Value toJs(Napi::Env env, const fmt::ValuePtr& value, const Loaded& loaded) {
  using Kind = fmt::Value::Kind;
  switch (value->kind) {
    case Kind::None: return env.Null();
    case Kind::Bool: return Napi::Boolean::New(env, value->boolean);
    case Kind::Int:
      if (value->integer > (int64_t(1) << 53) || value->integer < -(int64_t(1) << 53)) return Napi::BigInt::New(env, value->integer);
      return Napi::Number::New(env, static_cast<double>(value->integer));
    case Kind::Float: return Napi::Number::New(env, value->real);
    case Kind::String: return Napi::String::New(env, value->text);
    case Kind::Bytes: return Napi::Buffer<char>::Copy(env, value->text.data(), value->text.size());
    case Kind::List:
    case Kind::Tuple: {
      auto array = Napi::Array::New(env, value->items.size());
      for (size_t i = 0; i < value->items.size(); i++) array.Set(static_cast<uint32_t>(i), toJs(env, value->items[i], loaded));
      return array;
    }
    case Kind::Dict: {
      auto map = env.Global().Get("Map").As<Napi::Function>().New({});
      auto set = map.Get("set").As<Napi::Function>();
      for (auto& [k, v] : value->entries) set.Call(map, {toJs(env, k, loaded), toJs(env, v, loaded)});
      return map;
    }
    case Kind::Tensor: return TensorWrap::wrap(env, loaded.tensors.at(value.get()));
  }
  return env.Undefined();
}

// JS -> pickle tree, on the JS thread. Tensors become contiguous CPU copies saved one storage each.
struct ToSave {
  fmt::ValuePtr root;
  std::vector<std::pair<std::string, torch::Tensor>> storages;
};

fmt::ValuePtr fromJs(Napi::Env env, Napi::Value value, ToSave& out, int depth) {
  if (depth > 200) throw Napi::Error::New(env, "cannot save: nesting deeper than 200 levels (a cycle?)");
  if (value.IsNull() || value.IsUndefined()) return fmt::makeNone();
  if (value.IsBoolean()) return fmt::makeBool(value.As<Napi::Boolean>());
  if (value.IsNumber()) {
    double d = value.As<Napi::Number>().DoubleValue();
    if (std::floor(d) == d && std::abs(d) < 9007199254740992.0) return fmt::makeInt(static_cast<int64_t>(d));
    return fmt::makeFloat(d);
  }
  if (value.IsBigInt()) {
    bool lossless = false;
    return fmt::makeInt(value.As<Napi::BigInt>().Int64Value(&lossless));
  }
  if (value.IsString()) return fmt::makeString(value.As<Napi::String>().Utf8Value());
  if (TensorWrap::isTensor(env, value)) {
    auto tensor = TensorWrap::unwrap(value, "value").detach();
    std::string key = std::to_string(out.storages.size());
    out.storages.emplace_back(key, tensor);
    fmt::TensorRef ref;
    ref.storage = std::make_shared<fmt::StorageRef>();
    ref.storage->key = key;
    ref.storage->dtype = toFormatDType(tensor.scalar_type());
    ref.storage->numel = tensor.numel();
    ref.sizes = tensor.sizes().vec();
    ref.strides.assign(ref.sizes.size(), 1);
    for (int64_t i = static_cast<int64_t>(ref.sizes.size()) - 2; i >= 0; i--) {
      ref.strides[i] = ref.strides[i + 1] * std::max<int64_t>(ref.sizes[i + 1], 1);
    }
    return fmt::makeTensor(ref);
  }
  if (value.IsArray()) {
    auto array = value.As<Napi::Array>();
    std::vector<fmt::ValuePtr> items;
    for (uint32_t i = 0; i < array.Length(); i++) items.push_back(fromJs(env, array.Get(i), out, depth + 1));
    return fmt::makeList(std::move(items));
  }
  if (value.IsObject()) {
    auto object = value.As<Napi::Object>();
    std::vector<std::pair<fmt::ValuePtr, fmt::ValuePtr>> entries;
    bool isMap = object.InstanceOf(env.Global().Get("Map").As<Napi::Function>());
    if (isMap) {
      auto list = env.Global().Get("Array").As<Napi::Object>().Get("from").As<Napi::Function>().Call({object}).As<Napi::Array>();
      for (uint32_t i = 0; i < list.Length(); i++) {
        auto pair = list.Get(i).As<Napi::Array>();
        entries.emplace_back(fromJs(env, pair.Get(0u), out, depth + 1), fromJs(env, pair.Get(1u), out, depth + 1));
      }
    } else {
      auto keys = object.GetPropertyNames();
      for (uint32_t i = 0; i < keys.Length(); i++) {
        auto key = keys.Get(i);
        entries.emplace_back(fmt::makeString(key.ToString().Utf8Value()), fromJs(env, object.Get(key), out, depth + 1));
      }
    }
    return fmt::makeDict(std::move(entries), isMap);
  }
  throw Napi::TypeError::New(env, "cannot save a value of type " + value.ToString().Utf8Value());
}

// Writes everything or remembers the first error. PyTorchStreamWriter must never see a failed
// write: it throws from inside miniz and again from its destructor, which terminates the process.
// So a failure is recorded, later writes are skipped, and the caller reports it afterwards.
struct StickyWriter {
  int fd;
  int error = 0;
  size_t operator()(const void* data, size_t size) {
    const char* p = static_cast<const char*>(data);
    size_t left = size;
    while (left > 0 && error == 0) {
      ssize_t n = ::write(fd, p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        error = errno;
        break;
      }
      p += n;
      left -= static_cast<size_t>(n);
    }
    return size;
  }
};

// Temp file beside the target, fsync, rename, fsync the folder: a crash leaves the old file or the new.
void saveAtomically(const std::string& path, const ToSave& save) {
  std::string temp = path + ".tmp-" + std::to_string(::getpid());
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot write '" + path + "': " + std::strerror(errno));
  try {
    std::string pickled = fmt::pickle(*save.root);
    StickyWriter sink{fd};
    {
      caffe2::serialize::PyTorchStreamWriter writer([&sink](const void* data, size_t size) { return sink(data, size); });
      writer.writeRecord("data.pkl", pickled.data(), pickled.size());
      writer.writeRecord("byteorder", "little", 6);
      for (auto& [key, tensor] : save.storages) {
        if (sink.error) break;
        auto contiguous = tensor.to(torch::kCPU).contiguous();
        writer.writeRecord("data/" + key, contiguous.data_ptr(), contiguous.nbytes());
      }
      writer.writeEndOfFile();
    }
    if (sink.error) throw std::runtime_error("cannot write '" + path + "': " + std::strerror(sink.error));
    if (::fsync(fd) != 0) throw std::runtime_error("cannot write '" + path + "': fsync: " + std::strerror(errno));
    if (::close(fd) != 0) {
      fd = -1;
      throw std::runtime_error("cannot write '" + path + "': " + std::strerror(errno));
    }
    fd = -1;
    if (::rename(temp.c_str(), path.c_str()) != 0) throw std::runtime_error("cannot write '" + path + "': rename: " + std::strerror(errno));
  } catch (...) {
    if (fd >= 0) ::close(fd);
    ::unlink(temp.c_str());
    throw;
  }
  auto slash = path.find_last_of('/');
  std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  int dirFd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirFd >= 0) {
    ::fsync(dirFd);
    ::close(dirFd);
  }
}

// loadTorchFile(path) -> Promise<{ format, value }>
Napi::Value loadTorchFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  return Addon::of(env).queue().run<std::shared_ptr<Loaded>>(
      env,
      [path] {
        try {
          int64_t size = fileSize(path);
          uint8_t head[4] = {0, 0, 0, 0};
          std::ifstream in(path, std::ios::binary);
          in.read(reinterpret_cast<char*>(head), 4);
          if (size == 0) throw std::runtime_error("the file is empty");
          return std::make_shared<Loaded>(fmt::looksLikeZip(head, static_cast<size_t>(in.gcount())) ? loadZip(path, size)
                                                                                                     : loadLegacy(path, size));
        } catch (const std::exception& error) {
          throw std::runtime_error("cannot load '" + path + "': " + messageOf(error));
        }
      },
      [](Napi::Env e, std::shared_ptr<Loaded>& loaded) -> Napi::Value {
        auto result = Napi::Object::New(e);
        result.Set("format", loaded->format);
        result.Set("value", toJs(e, loaded->root, *loaded));
        return result;
      });
}

// saveTorchFile(path, value) -> Promise<void>; value: Map (OrderedDict), object, array, Tensor, scalars.
Napi::Value saveTorchFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    std::string path = info[0].As<Napi::String>().Utf8Value();
    auto save = std::make_shared<ToSave>();
    save->root = fromJs(env, info[1], *save, 0);
    return Addon::of(env).queue().run<bool>(
        env, [path, save] { saveAtomically(path, *save); return true; },
        [](Napi::Env e, bool&) -> Napi::Value { return e.Undefined(); });
  });
}

}  // namespace

void registerSerialization(Napi::Env env, Napi::Object exports, Addon&) {
  exports.Set("loadTorchFile", Napi::Function::New<loadTorchFile>(env, "loadTorchFile"));
  exports.Set("saveTorchFile", Napi::Function::New<saveTorchFile>(env, "saveTorchFile"));
}

}  // namespace finetorch
