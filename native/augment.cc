// augmentBatch: a batch of decoded uint8 images -> one normalised float32 tensor [N, 3, H, W].
// Runs on libuv's pool (not the compute thread), so the next batch is prepared while the current
// one trains; the kernels are plain C++ (ops/augment_kernels.h) and never enter libtorch's OpenMP.
#include <exception>
#include <memory>
#include <thread>
#include <vector>

#include "addon.h"
#include "errors.h"
#include "ops/augment_kernels.h"
#include "ops/random_erasing.h"
#include "ops/policy_ops.h"
#include "tensor.h"

namespace finetorch {

namespace {

constexpr int kBaseParams = 13;  // cropX, cropY, cropW, cropH, flip, b, c, s, h, order[4]
constexpr int kParamsPerImage = kBaseParams + augment::kPolicyParams;  // then the policy ops

class AugmentWorker : public Napi::AsyncWorker {
 public:
  AugmentWorker(Napi::Env env, std::vector<augment::ImageView> images, std::vector<augment::Params> params,
                std::vector<augment::PolicySteps> policies, std::vector<augment::EraseBox> erasures, augment::Output output, bool channelsLast,
                bool pinMemory, int threads, std::vector<Napi::ObjectReference> keepAlive)
      : Napi::AsyncWorker(env, "finetorch.augment"),
        deferred_(Napi::Promise::Deferred::New(env)),
        images_(std::move(images)),
        params_(std::move(params)),
        erasures_(std::move(erasures)),
        policies_(std::move(policies)),
        output_(output),
        channelsLast_(channelsLast),
        pinMemory_(pinMemory),
        threads_(threads),
        keepAlive_(std::move(keepAlive)) {}

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      int64_t n = static_cast<int64_t>(images_.size());
      // NHWC memory when channels-last is asked for; the tensor is viewed as NCHW either way
      // page-locked when bound for a GPU, so the copy there can be asynchronous
      auto options = torch::TensorOptions().dtype(torch::kFloat).pinned_memory(pinMemory_);
      result_ = channelsLast_ ? torch::empty({n, output_.height, output_.width, 3}, options).permute({0, 3, 1, 2})
                              : torch::empty({n, 3, output_.height, output_.width}, options);
      float* base = result_.data_ptr<float>();
      size_t perImage = static_cast<size_t>(3) * output_.width * output_.height;
      // images are independent and write disjoint slices: split them over `threads` (the pool
      // thread takes a share too); plain C++, no libtorch calls
      size_t threads = std::min<size_t>(std::max(threads_, 1), images_.size());
      std::vector<std::exception_ptr> failures(threads);  // e.g. bad_alloc: rethrown here, not std::terminate
      auto work = [&](size_t first) {
        try {
          std::vector<uint8_t> pixels;
          for (size_t i = first; i < images_.size(); i += threads) {
            augment::cropResize(images_[i], params_[i], output_.width, output_.height, pixels);
            augment::applyPolicy({pixels, output_.width, output_.height}, policies_[i]);
            augment::colorJitter(pixels, params_[i]);
            augment::normalize(pixels, output_, channelsLast_, base + i * perImage);
            // RandomErasing comes after Normalize in torchvision's presets: it zeroes normalised values
            if (!erasures_.empty()) augment::erase(base + i * perImage, output_.width, output_.height, channelsLast_, erasures_[i]);
          }
        } catch (...) {
          failures[first] = std::current_exception();
        }
      };
      std::vector<std::thread> helpers;
      for (size_t t = 1; t < threads; t++) helpers.emplace_back(work, t);
      work(0);
      for (auto& h : helpers) h.join();
      for (auto& failure : failures) {
        if (failure) std::rethrow_exception(failure);
      }
    } catch (const std::exception& error) {
      SetError(messageOf(error));
    }
  }

  void OnOK() override {
    keepAlive_.clear();
    deferred_.Resolve(TensorWrap::wrap(Env(), result_));
  }

  void OnError(const Napi::Error& error) override {
    keepAlive_.clear();
    deferred_.Reject(error.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::vector<augment::ImageView> images_;
  std::vector<augment::Params> params_;
  std::vector<augment::EraseBox> erasures_;  // empty: no RandomErasing
  std::vector<augment::PolicySteps> policies_;
  augment::Output output_;
  bool channelsLast_;
  bool pinMemory_;
  int threads_;
  std::vector<Napi::ObjectReference> keepAlive_;  // the JS buffers read by Execute()
  torch::Tensor result_;
};

// RandomErasing's boxes from options.erase, checked to lie inside the output (empty when absent).
std::vector<augment::EraseBox> eraseBoxes(Napi::Value value, uint32_t count, const augment::Output& output) {
  std::vector<augment::EraseBox> boxes;
  if (value.IsNull() || value.IsUndefined()) return boxes;
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    throw std::invalid_argument("augmentBatch: erase must be an Int32Array");
  }
  auto flat = value.As<Napi::Int32Array>();
  if (flat.ElementLength() != static_cast<size_t>(count) * 4) throw std::invalid_argument("augmentBatch: erase length mismatch");
  for (uint32_t i = 0; i < count; i++) {
    const int32_t* b = flat.Data() + static_cast<size_t>(i) * 4;
    augment::EraseBox box{b[0], b[1], b[2], b[3]};
    if (box.width != 0 && (box.x < 0 || box.y < 0 || box.width < 0 || box.height < 1 || box.x + box.width > output.width ||
                           box.y + box.height > output.height)) {
      throw std::invalid_argument("augmentBatch: erase box of image " + std::to_string(i) + " lies outside the output");
    }
    boxes.push_back(box);
  }
  return boxes;
}

// augmentBatch(images: {data, width, height}[], params: Float64Array, options) -> Promise<Tensor>;
// options.erase (optional Int32Array, x, y, width, height per image): RandomErasing's boxes.
// TS has validated everything (crop boxes inside images, sizes); C++ still checks what memory safety needs.
Napi::Value augmentBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto list = info[0].As<Napi::Array>();
    auto params = info[1].As<Napi::Float64Array>();
    auto options = info[2].As<Napi::Object>();
    augment::Output output;
    output.width = options.Get("width").As<Napi::Number>().Int32Value();
    output.height = options.Get("height").As<Napi::Number>().Int32Value();
    auto mean = options.Get("mean").As<Napi::Array>();
    auto std = options.Get("std").As<Napi::Array>();
    for (uint32_t c = 0; c < 3; c++) {
      output.mean[c] = mean.Get(c).As<Napi::Number>().FloatValue();
      output.std[c] = std.Get(c).As<Napi::Number>().FloatValue();
    }
    bool channelsLast = options.Get("channelsLast").ToBoolean();
    bool pinMemory = options.Get("pinMemory").ToBoolean() && torch::cuda::is_available();
    int threads = options.Get("threads").As<Napi::Number>().Int32Value();
    if (params.ElementLength() != list.Length() * kParamsPerImage) throw std::invalid_argument("augmentBatch: params length mismatch");
    std::vector<augment::ImageView> images;
    std::vector<augment::Params> perImage;
    std::vector<augment::PolicySteps> policies;
    std::vector<Napi::ObjectReference> keepAlive;
    for (uint32_t i = 0; i < list.Length(); i++) {
      auto item = list.Get(i).As<Napi::Object>();
      auto data = item.Get("data").As<Napi::Uint8Array>();
      augment::ImageView view{data.Data(), item.Get("width").As<Napi::Number>().Int32Value(),
                              item.Get("height").As<Napi::Number>().Int32Value()};
      if (static_cast<size_t>(view.width) * view.height * 3 != data.ByteLength()) {
        throw std::invalid_argument("augmentBatch: image " + std::to_string(i) + " has the wrong number of bytes for its size");
      }
      const double* p = params.Data() + static_cast<size_t>(i) * kParamsPerImage;
      augment::Params q;
      q.cropX = static_cast<int>(p[0]);
      q.cropY = static_cast<int>(p[1]);
      q.cropWidth = static_cast<int>(p[2]);
      q.cropHeight = static_cast<int>(p[3]);
      if (q.cropX < 0 || q.cropY < 0 || q.cropWidth < 1 || q.cropHeight < 1 || q.cropX + q.cropWidth > view.width ||
          q.cropY + q.cropHeight > view.height) {
        throw std::invalid_argument("augmentBatch: crop box of image " + std::to_string(i) + " lies outside the image");
      }
      q.flip = p[4] != 0;
      q.brightness = p[5];
      q.contrast = p[6];
      q.saturation = p[7];
      q.hue = p[8];
      for (int k = 0; k < 4; k++) q.order[k] = static_cast<int>(p[9 + k]);
      images.push_back(view);
      perImage.push_back(q);
      policies.push_back(augment::readPolicySteps(p + kBaseParams, i));
      keepAlive.push_back(Napi::Persistent(data.As<Napi::Object>()));
    }
    auto erasures = eraseBoxes(options.Get("erase"), list.Length(), output);
    auto* worker = new AugmentWorker(env, std::move(images), std::move(perImage), std::move(policies), std::move(erasures), output, channelsLast,
                                     pinMemory, threads, std::move(keepAlive));
    auto promise = worker->promise();
    worker->Queue();
    return promise;
  });
}

}  // namespace

void registerAugmentPolicy(Napi::Env env, Napi::Object exports);  // augment_policy.cc

void registerAugment(Napi::Env env, Napi::Object exports, Addon&) {
  exports.Set("augmentBatch", Napi::Function::New<augmentBatch>(env, "augmentBatch"));
  registerAugmentPolicy(env, exports);
}

}  // namespace finetorch
