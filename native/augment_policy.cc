// augmentPolicyBatch: torchvision's AutoAugment-family ops alone on uint8 images (any size, no
// crop or normalisation), each image returned as new HWC bytes. The same kernels augmentBatch
// runs after its crop; this entry lets the ops be checked against PIL byte for byte.
#include <exception>
#include <vector>

#include "addon.h"
#include "errors.h"
#include "ops/policy_ops.h"

namespace finetorch {

namespace {

struct PolicyImage {
  std::vector<uint8_t> pixels;
  int width, height;
  augment::PolicySteps policy;
};

class PolicyWorker : public Napi::AsyncWorker {
 public:
  PolicyWorker(Napi::Env env, std::vector<PolicyImage> images)
      : Napi::AsyncWorker(env, "finetorch.augmentPolicy"), deferred_(Napi::Promise::Deferred::New(env)), images_(std::move(images)) {}

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      for (auto& image : images_) augment::applyPolicy({image.pixels, image.width, image.height}, image.policy);
    } catch (const std::exception& error) {
      SetError(messageOf(error));
    }
  }

  void OnOK() override {
    auto list = Napi::Array::New(Env(), images_.size());
    for (uint32_t i = 0; i < images_.size(); i++) list.Set(i, Napi::Buffer<uint8_t>::Copy(Env(), images_[i].pixels.data(), images_[i].pixels.size()));
    deferred_.Resolve(list);
  }

  void OnError(const Napi::Error& error) override { deferred_.Reject(error.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::vector<PolicyImage> images_;
};

// augmentPolicyBatch(images: {data, width, height}[], policy: Float64Array) -> Promise<Buffer[]>,
// `policy` holding kPolicyParams numbers per image. The bytes are copied, so the caller's buffers
// may change meanwhile.
Napi::Value augmentPolicyBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto list = info[0].As<Napi::Array>();
    auto policy = info[1].As<Napi::Float64Array>();
    if (policy.ElementLength() != list.Length() * augment::kPolicyParams) throw std::invalid_argument("augmentPolicyBatch: policy length mismatch");
    std::vector<PolicyImage> images;
    for (uint32_t i = 0; i < list.Length(); i++) {
      auto item = list.Get(i).As<Napi::Object>();
      auto data = item.Get("data").As<Napi::Uint8Array>();
      int width = item.Get("width").As<Napi::Number>().Int32Value(), height = item.Get("height").As<Napi::Number>().Int32Value();
      if (width < 1 || height < 1 || static_cast<size_t>(width) * height * 3 != data.ByteLength()) {
        throw std::invalid_argument("augmentPolicyBatch: image " + std::to_string(i) + " has the wrong number of bytes for its size");
      }
      images.push_back({std::vector<uint8_t>(data.Data(), data.Data() + data.ByteLength()), width, height,
                        augment::readPolicySteps(policy.Data() + static_cast<size_t>(i) * augment::kPolicyParams, i)});
    }
    auto* worker = new PolicyWorker(env, std::move(images));
    auto promise = worker->promise();
    worker->Queue();
    return promise;
  });
}

}  // namespace

void registerAugmentPolicy(Napi::Env env, Napi::Object exports) {
  exports.Set("augmentPolicyBatch", Napi::Function::New<augmentPolicyBatch>(env, "augmentPolicyBatch"));
}

}  // namespace finetorch
