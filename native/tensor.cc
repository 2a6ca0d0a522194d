#include "tensor.h"

#include <cstring>

#include "addon.h"
#include "device.h"
#include "dtype.h"
#include "errors.h"

namespace finetorch {

namespace {

napi_typedarray_type typedArrayTypeFor(c10::ScalarType type) {
  switch (type) {
    case c10::kFloat: return napi_float32_array;
    case c10::kDouble: return napi_float64_array;
    case c10::kLong: return napi_bigint64_array;
    case c10::kInt: return napi_int32_array;
    case c10::kShort: return napi_int16_array;
    case c10::kChar: return napi_int8_array;
    case c10::kByte:
    case c10::kBool: return napi_uint8_array;
    default: return napi_float32_array;  // half types come back widened to float32
  }
}

}  // namespace

Napi::Function TensorWrap::define(Napi::Env env) {
  return DefineClass(env, "Tensor",
                     {
                         InstanceAccessor<&TensorWrap::shape>("shape"),
                         InstanceAccessor<&TensorWrap::dtype>("dtype"),
                         InstanceAccessor<&TensorWrap::device>("device"),
                         InstanceAccessor<&TensorWrap::requiresGrad>("requiresGrad"),
                         InstanceAccessor<&TensorWrap::disposed>("disposed"),
                         InstanceAccessor<&TensorWrap::byteLength>("byteLength"),
                         InstanceMethod<&TensorWrap::toTypedArray>("toTypedArray"),
                         InstanceMethod<&TensorWrap::toBytes>("toBytes"),
                         InstanceMethod<&TensorWrap::to>("to"),
                         InstanceMethod<&TensorWrap::clone>("clone"),
                         InstanceMethod<&TensorWrap::dispose>("dispose"),
                     });
}

Napi::Object TensorWrap::wrap(Napi::Env env, torch::Tensor tensor) {
  auto holder = Napi::External<torch::Tensor>::New(env, &tensor);
  return Addon::of(env).tensorConstructor.New({holder});
}

bool TensorWrap::isTensor(Napi::Env env, Napi::Value value) {
  return value.IsObject() &&
         value.As<Napi::Object>().InstanceOf(Addon::of(env).tensorConstructor.Value());
}

const torch::Tensor& TensorWrap::unwrap(Napi::Value value, const char* argumentName) {
  Napi::Env env = value.Env();
  if (!isTensor(env, value)) {
    throw Napi::TypeError::New(env, std::string("Expected a Tensor for ") + argumentName);
  }
  return Unwrap(value.As<Napi::Object>())->live(env);
}

// new Tensor(typedArray, shape, dtype) from JS, or new Tensor(External<torch::Tensor>) from wrap().
TensorWrap::TensorWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorWrap>(info) {
  Napi::Env env = info.Env();
  env_ = env;
  if (info.Length() == 1 && info[0].IsExternal()) {
    adopt(*info[0].As<Napi::External<torch::Tensor>>().Data());
    return;
  }
  guarded(env, [&] {
    if (info.Length() != 3 || !info[0].IsTypedArray() || !info[1].IsArray() || !info[2].IsString()) {
      throw Napi::TypeError::New(env, "Tensor(data: TypedArray, shape: number[], dtype: string)");
    }
    auto data = info[0].As<Napi::TypedArray>();
    auto shapeArray = info[1].As<Napi::Array>();
    std::vector<int64_t> sizes(shapeArray.Length());
    for (uint32_t i = 0; i < shapeArray.Length(); i++) {
      sizes[i] = shapeArray.Get(i).As<Napi::Number>().Int64Value();
    }
    auto type = parseDType(info[2].As<Napi::String>().Utf8Value());
    auto tensor = torch::empty(sizes, torch::TensorOptions().dtype(type));
    size_t bytes = tensor.nbytes();
    if (bytes != data.ByteLength()) {
      throw Napi::RangeError::New(env, "Tensor data has " + std::to_string(data.ByteLength()) +
                                           " bytes but shape and dtype need " + std::to_string(bytes));
    }
    if (bytes > 0) {
      auto* source = static_cast<const uint8_t*>(data.ArrayBuffer().Data()) + data.ByteOffset();
      std::memcpy(tensor.data_ptr(), source, bytes);
    }
    adopt(std::move(tensor));
  });
}

TensorWrap::~TensorWrap() { release(); }

void TensorWrap::adopt(torch::Tensor tensor) {
  tensor_ = std::move(tensor);
  live_ = true;
  accountedBytes_ = tensor_.defined() && tensor_.is_cpu() ? static_cast<int64_t>(tensor_.nbytes()) : 0;
  if (accountedBytes_ > 0) {
    int64_t total = 0;
    napi_adjust_external_memory(env_, accountedBytes_, &total);
  }
}

void TensorWrap::release() {
  if (!live_) return;
  live_ = false;
  tensor_ = torch::Tensor();
  if (accountedBytes_ > 0) {
    int64_t total = 0;
    napi_adjust_external_memory(env_, -accountedBytes_, &total);
    accountedBytes_ = 0;
  }
}

const torch::Tensor& TensorWrap::live(Napi::Env env) const {
  if (!live_) throw Napi::Error::New(env, "Tensor was used after dispose()");
  return tensor_;
}

Napi::Value TensorWrap::shape(const Napi::CallbackInfo& info) {
  const auto& tensor = live(info.Env());
  auto result = Napi::Array::New(info.Env(), tensor.dim());
  for (int64_t i = 0; i < tensor.dim(); i++) {
    result.Set(static_cast<uint32_t>(i), Napi::Number::New(info.Env(), static_cast<double>(tensor.size(i))));
  }
  return result;
}

Napi::Value TensorWrap::dtype(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), dtypeName(live(info.Env()).scalar_type()));
}

Napi::Value TensorWrap::device(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), deviceName(live(info.Env()).device()));
}

Napi::Value TensorWrap::requiresGrad(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), live(info.Env()).requires_grad());
}

Napi::Value TensorWrap::disposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !live_);
}

Napi::Value TensorWrap::byteLength(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(live(info.Env()).nbytes()));
}

// A copy on the CPU in the matching TypedArray (BigInt64Array for int64, Float32Array for halves).
Napi::Value TensorWrap::toTypedArray(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto tensor = live(env).detach();
    auto type = tensor.scalar_type();
    if (type == c10::kHalf || type == c10::kBFloat16) tensor = tensor.to(c10::kFloat);
    tensor = tensor.to(torch::kCPU).contiguous();
    size_t bytes = tensor.nbytes();
    auto buffer = Napi::ArrayBuffer::New(env, bytes);
    if (bytes > 0) std::memcpy(buffer.Data(), tensor.data_ptr(), bytes);
    napi_value array;
    auto arrayType = typedArrayTypeFor(tensor.scalar_type());
    NAPI_THROW_IF_FAILED(env, napi_create_typedarray(env, arrayType, tensor.numel(), buffer, 0, &array),
                         Napi::Value());
    return Napi::Value(env, array);
  });
}

// The raw little-endian bytes of a contiguous CPU copy, whatever the dtype (for file writers).
Napi::Value TensorWrap::toBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto tensor = live(env).detach().to(torch::kCPU).contiguous();
    return Napi::Buffer<uint8_t>::Copy(env, static_cast<const uint8_t*>(tensor.data_ptr()), tensor.nbytes());
  });
}

// to(device: string, dtype?: string, nonBlocking?: bool) -> Promise<Tensor>; a copy made on the
// compute thread (non-blocking from pinned host memory to CUDA: ordered on the same stream).
Napi::Value TensorWrap::to(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto source = live(env);
    auto device = parseDevice(info[0].As<Napi::String>().Utf8Value());
    auto type = info.Length() > 1 && info[1].IsString() ? parseDType(info[1].As<Napi::String>().Utf8Value())
                                                       : source.scalar_type();
    bool nonBlocking = info.Length() > 2 && info[2].ToBoolean() && source.is_pinned();
    return Addon::of(env).queue().run<torch::Tensor>(
        env, [source, device, type, nonBlocking] { return source.to(device, type, nonBlocking, /*copy=*/true); },
        [](Napi::Env e, torch::Tensor& result) -> Napi::Value { return wrap(e, result); });
  });
}

Napi::Value TensorWrap::clone(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value { return wrap(env, live(env).detach().clone()); });
}

Napi::Value TensorWrap::dispose(const Napi::CallbackInfo& info) {
  release();
  return info.Env().Undefined();
}

void registerTensor(Napi::Env env, Napi::Object exports, Addon& addon) {
  auto constructor = TensorWrap::define(env);
  addon.tensorConstructor = Napi::Persistent(constructor);
  exports.Set("Tensor", constructor);
}

}  // namespace finetorch
