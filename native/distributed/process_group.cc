// The JS ProcessGroup (one distributed run's c10d group) and GradientSync (a model's gradient
// averaging, passed to trainStep). Every collective runs on the compute queue, in order with the
// train steps, and returns a Promise.
#include <map>

#include <napi.h>

#include "../addon.h"
#include "../errors.h"
#include "../model.h"
#include "../tensor.h"
#include "gradient_sync.h"

#ifdef FINETORCH_C10D
#include "gradient_sync_impl.h"
#include "group.h"
#endif

namespace finetorch {

namespace {

class GradientSyncWrap : public Napi::ObjectWrap<GradientSyncWrap> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "GradientSync",
                       {InstanceAccessor<&GradientSyncWrap::mode>("mode"), InstanceMethod<&GradientSyncWrap::dispose>("dispose")});
  }
  explicit GradientSyncWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<GradientSyncWrap>(info) {
    if (info.Length() != 1 || !info[0].IsExternal()) throw Napi::TypeError::New(info.Env(), "GradientSync objects come from ProcessGroup.gradientSync()");
    sync_ = *info[0].As<Napi::External<std::shared_ptr<GradientSync>>>().Data();
  }
  std::shared_ptr<GradientSync> live(Napi::Env env) const {
    if (!sync_) throw Napi::Error::New(env, "GradientSync was used after dispose()");
    return sync_;
  }

 private:
  Napi::Value mode(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), live(info.Env())->mode()); }
  Napi::Value dispose(const Napi::CallbackInfo& info) {
    // the Reducer removes its autograd hooks on the compute thread, after any step in flight
    auto sync = std::move(sync_);
    if (sync) {
      Addon::of(info.Env()).queue().run<bool>(
          info.Env(), [sync]() mutable { sync.reset(); return true; }, [](Napi::Env e, bool&) -> Napi::Value { return e.Undefined(); });
    }
    return info.Env().Undefined();
  }
  std::shared_ptr<GradientSync> sync_;
};

#ifdef FINETORCH_C10D

class ProcessGroupWrap : public Napi::ObjectWrap<ProcessGroupWrap> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "ProcessGroup",
                       {
                           InstanceAccessor<&ProcessGroupWrap::rank>("rank"),
                           InstanceAccessor<&ProcessGroupWrap::size>("size"),
                           InstanceAccessor<&ProcessGroupWrap::backendName>("backend"),
                           InstanceMethod<&ProcessGroupWrap::allReduce>("allReduce"),
                           InstanceMethod<&ProcessGroupWrap::broadcast>("broadcast"),
                           InstanceMethod<&ProcessGroupWrap::allGather>("allGather"),
                           InstanceMethod<&ProcessGroupWrap::barrier>("barrier"),
                           InstanceMethod<&ProcessGroupWrap::shareString>("shareString"),
                           InstanceMethod<&ProcessGroupWrap::lostRanks>("lostRanks"),
                           InstanceMethod<&ProcessGroupWrap::broadcastModel>("broadcastModel"),
                           InstanceMethod<&ProcessGroupWrap::gradientSync>("gradientSync"),
                           InstanceMethod<&ProcessGroupWrap::abandon>("abandon"),
                           InstanceMethod<&ProcessGroupWrap::dispose>("dispose"),
                           InstanceAccessor<&ProcessGroupWrap::disposed>("disposed"),
                       });
  }
  explicit ProcessGroupWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ProcessGroupWrap>(info) {
    if (info.Length() != 1 || !info[0].IsExternal()) throw Napi::TypeError::New(info.Env(), "ProcessGroup objects come from initProcessGroup()");
    group_ = *info[0].As<Napi::External<std::shared_ptr<Group>>>().Data();
  }

 private:
  std::shared_ptr<Group> live(Napi::Env env) const {
    if (!group_) throw Napi::Error::New(env, "ProcessGroup was used after dispose()");
    return group_;
  }
  template <typename Result>
  Napi::Value queued(Napi::Env env, std::function<Result()> work, std::function<Napi::Value(Napi::Env, Result&)> toJs) {
    return guarded(env, [&]() -> Napi::Value { return Addon::of(env).queue().run<Result>(env, std::move(work), std::move(toJs)); });
  }
  static Napi::Value undefinedResult(Napi::Env env, bool&) { return env.Undefined(); }

  Napi::Value rank(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), live(info.Env())->rank()); }
  Napi::Value size(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), live(info.Env())->size()); }
  Napi::Value backendName(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), live(info.Env())->options().backend); }
  Napi::Value disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !group_); }

  // allReduce(tensor, 'sum' | 'max'): in place
  Napi::Value allReduce(const Napi::CallbackInfo& info) {
    auto group = live(info.Env());
    auto tensor = guarded(info.Env(), [&] { return TensorWrap::unwrap(info[0], "tensor"); });
    bool max = info[1].IsString() && info[1].As<Napi::String>().Utf8Value() == "max";
    return queued<bool>(info.Env(), [group, tensor, max]() mutable { group->allReduce(tensor, max); return true; }, undefinedResult);
  }
  // broadcast(tensor, root): in place
  Napi::Value broadcast(const Napi::CallbackInfo& info) {
    auto group = live(info.Env());
    auto tensor = guarded(info.Env(), [&] { return TensorWrap::unwrap(info[0], "tensor"); });
    int root = info[1].As<Napi::Number>().Int32Value();
    return queued<bool>(info.Env(), [group, tensor, root]() mutable { group->broadcast(tensor, root); return true; }, undefinedResult);
  }
  Napi::Value allGather(const Napi::CallbackInfo& info) {
    auto group = live(info.Env());
    auto tensor = guarded(info.Env(), [&] { return TensorWrap::unwrap(info[0], "tensor"); });
    return queued<torch::Tensor>(
        info.Env(), [group, tensor] { return group->allGather(tensor); }, [](Napi::Env e, torch::Tensor& t) -> Napi::Value { return TensorWrap::wrap(e, t); });
  }
  Napi::Value barrier(const Napi::CallbackInfo& info) {
    auto group = live(info.Env());
    return queued<bool>(info.Env(), [group] { group->barrier(); return true; }, undefinedResult);
  }
  // shareString(key, value, root): root's value on every rank
  Napi::Value shareString(const Napi::CallbackInfo& info) {
    auto group = live(info.Env());
    auto key = info[0].As<Napi::String>().Utf8Value();
    auto value = info[1].As<Napi::String>().Utf8Value();
    int root = info[2].As<Napi::Number>().Int32Value();
    return queued<std::string>(
        info.Env(), [group, key, value, root] { return group->shareString(key, value, root); },
        [](Napi::Env e, std::string& s) -> Napi::Value { return Napi::String::New(e, s); });
  }
  // lostRanks(waitMs): { storeLost, ranks }. Not on the compute queue: it may be blocked in the
  // very collective that failed; the store has its own connections.
  Napi::Value lostRanks(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    auto group = live(env);
    auto wait = std::chrono::milliseconds(info[0].As<Napi::Number>().Int64Value());
    auto deferred = Napi::Promise::Deferred::New(env);
    struct Worker : Napi::AsyncWorker {
      Worker(Napi::Env env, std::shared_ptr<Group> group, std::chrono::milliseconds wait, Napi::Promise::Deferred deferred)
          : Napi::AsyncWorker(env), group(std::move(group)), wait(wait), deferred(deferred) {}
      void Execute() override { lost = group->lostRanks(wait); }
      void OnOK() override {
        auto out = Napi::Object::New(Env());
        out.Set("storeLost", lost.storeLost);
        auto ranks = Napi::Array::New(Env(), lost.ranks.size());
        for (size_t i = 0; i < lost.ranks.size(); i++) ranks.Set(static_cast<uint32_t>(i), lost.ranks[i]);
        out.Set("ranks", ranks);
        deferred.Resolve(out);
      }
      void OnError(const Napi::Error& error) override { deferred.Reject(error.Value()); }
      std::shared_ptr<Group> group;
      std::chrono::milliseconds wait;
      Napi::Promise::Deferred deferred;
      LostRanks lost;
    };
    (new Worker(env, group, wait, deferred))->Queue();
    return deferred.Promise();
  }
  // broadcastModel(model): checks every rank built the same parameters and buffers (names'
  // order, shapes, dtypes), then copies rank 0's values to every rank, as DDP does at start.
  Napi::Value broadcastModel(const Napi::CallbackInfo& info) {
    auto group = live(info.Env());
    auto net = ModelWrap::unwrap(info[0], "model");
    return queued<bool>(info.Env(), [group, net] { broadcastState(*group, *net); return true; }, undefinedResult);
  }
  // gradientSync(model, { bucketCapMb, flatBuckets }): over the parameters that require grad now
  Napi::Value gradientSync(const Napi::CallbackInfo& info) {
    auto group = live(info.Env());
    auto net = ModelWrap::unwrap(info[0], "model");
    auto options = info[1].As<Napi::Object>();
    auto bucketBytes = static_cast<int64_t>(options.Get("bucketCapMb").As<Napi::Number>().DoubleValue() * 1024 * 1024);
    bool flat = options.Get("flatBuckets").ToBoolean();
    return queued<std::shared_ptr<GradientSync>>(
        info.Env(),
        [group, net, bucketBytes, flat] {
          std::vector<std::pair<std::string, torch::Tensor>> params;
          for (auto& item : net->named_parameters()) {
            if (item.value().requires_grad()) params.emplace_back(item.key(), item.value());
          }
          if (params.empty()) throw std::runtime_error("gradientSync: the model has no parameter that requires grad");
          return createGradientSync(group, params, bucketBytes, flat);
        },
        [](Napi::Env e, std::shared_ptr<GradientSync>& sync) -> Napi::Value {
          auto holder = Napi::External<std::shared_ptr<GradientSync>>::New(e, &sync);
          return Addon::of(e).gradientSyncConstructor.New({holder});
        });
  }
  Napi::Value abandon(const Napi::CallbackInfo& info) {
    if (group_) group_->abandon();
    group_.reset();
    return info.Env().Undefined();
  }
  Napi::Value dispose(const Napi::CallbackInfo& info) {
    auto group = std::move(group_);
    if (group) {
      // destroyed on the compute thread, after any collective in flight
      Addon::of(info.Env()).queue().run<bool>(
          info.Env(), [group]() mutable { group.reset(); return true; }, undefinedResult);
    }
    return info.Env().Undefined();
  }

  static void broadcastState(Group& group, Net& net) {
    torch::NoGradGuard noGrad;
    std::vector<std::pair<std::string, torch::Tensor>> state;
    for (auto& item : net.named_parameters()) state.emplace_back(item.key(), item.value());
    for (auto& item : net.named_buffers()) state.emplace_back(item.key(), item.value());
    // the layout signature: per tensor its dtype, rank and sizes
    std::vector<int64_t> signature;
    std::vector<size_t> startOf;
    for (auto& [name, tensor] : state) {
      startOf.push_back(signature.size());
      signature.push_back(static_cast<int64_t>(tensor.scalar_type()));
      signature.push_back(tensor.dim());
      for (auto size : tensor.sizes()) signature.push_back(size);
    }
    auto length = torch::tensor({static_cast<int64_t>(signature.size())}, torch::kLong);
    group.broadcast(length, 0);
    auto rootSignature = torch::zeros({length.item<int64_t>()}, torch::kLong);
    if (group.rank() == 0) rootSignature.copy_(torch::tensor(signature, torch::kLong));
    group.broadcast(rootSignature, 0);
    std::string mismatch;
    auto* root = rootSignature.data_ptr<int64_t>();
    for (size_t i = 0; i < state.size() && mismatch.empty(); i++) {
      size_t start = startOf[i], end = i + 1 < state.size() ? startOf[i + 1] : signature.size();
      if (end > static_cast<size_t>(rootSignature.numel()) || !std::equal(signature.begin() + start, signature.begin() + end, root + start)) {
        mismatch = state[i].first;
      }
    }
    if (mismatch.empty() && static_cast<int64_t>(signature.size()) != rootSignature.numel()) mismatch = "(the number of tensors)";
    auto bad = torch::tensor({mismatch.empty() ? 0L : 1L}, torch::kLong);
    group.allReduce(bad, /*max=*/true);
    if (!mismatch.empty()) {
      throw std::runtime_error("rank " + std::to_string(group.rank()) + " built a different model from rank 0's: " + mismatch +
                               " differs in shape or dtype (start every rank with the same arch, head and classes)");
    }
    if (bad.item<int64_t>() != 0) throw std::runtime_error("another rank built a different model from rank 0's (see its message)");
    // rank 0's values, one flat broadcast per dtype and device
    std::map<std::pair<int, std::string>, std::vector<torch::Tensor>> groups;
    for (auto& [name, tensor] : state) groups[{static_cast<int>(tensor.scalar_type()), tensor.device().str()}].push_back(tensor);
    for (auto& [key, tensors] : groups) {
      auto flat = torch::utils::flatten_dense_tensors(tensors);
      group.broadcast(flat, 0);
      auto parts = torch::utils::unflatten_dense_tensors(flat, tensors);
      for (size_t i = 0; i < tensors.size(); i++) tensors[i].copy_(parts[i]);
    }
  }

  std::shared_ptr<Group> group_;
};

// initProcessGroup({ rank, worldSize, localRank, masterAddr, masterPort, timeoutMs, backend })
Napi::Value initProcessGroup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto o = info[0].As<Napi::Object>();
    GroupOptions options;
    options.rank = o.Get("rank").As<Napi::Number>().Int32Value();
    options.worldSize = o.Get("worldSize").As<Napi::Number>().Int32Value();
    options.localRank = o.Get("localRank").As<Napi::Number>().Int32Value();
    options.masterAddr = o.Get("masterAddr").As<Napi::String>().Utf8Value();
    options.masterPort = o.Get("masterPort").As<Napi::Number>().Int32Value();
    options.timeout = std::chrono::milliseconds(o.Get("timeoutMs").As<Napi::Number>().Int64Value());
    options.backend = o.Get("backend").As<Napi::String>().Utf8Value();
    return Addon::of(env).queue().run<std::shared_ptr<Group>>(
        env, [options] { return std::make_shared<Group>(options); },
        [](Napi::Env e, std::shared_ptr<Group>& group) -> Napi::Value {
          auto holder = Napi::External<std::shared_ptr<Group>>::New(e, &group);
          return Addon::of(e).processGroupConstructor.New({holder});
        });
  });
}

#else  // no c10d in this build

Napi::Value initProcessGroup(const Napi::CallbackInfo& info) {
  throw Napi::Error::New(info.Env(),
                         "this finetorch was built without c10d (gloo's headers were missing at build time): install libgloo-dev "
                         "(Debian) and rebuild with `npm run build:native` for distributed training");
}

#endif

// What this build can do: { c10d, backends, gradientSync }
Napi::Value distributedSupport(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto out = Napi::Object::New(env);
  auto backends = Napi::Array::New(env);
#ifdef FINETORCH_C10D
  out.Set("c10d", true);
  backends.Set(0u, "gloo");
#ifdef USE_C10D_NCCL
  backends.Set(1u, "nccl");
#endif
  out.Set("gradientSync", FINETORCH_HAS_REDUCER ? "reducer" : "flat-buckets");
#else
  out.Set("c10d", false);
  out.Set("gradientSync", env.Null());
#endif
  out.Set("backends", backends);
  return out;
}

}  // namespace

std::shared_ptr<GradientSync> unwrapGradientSync(Napi::Value value) {
  if (value.IsNull() || value.IsUndefined()) return nullptr;
  auto env = value.Env();
  if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(Addon::of(env).gradientSyncConstructor.Value())) {
    throw Napi::TypeError::New(env, "Expected a GradientSync (from ProcessGroup.gradientSync) for gradientSync");
  }
  return GradientSyncWrap::Unwrap(value.As<Napi::Object>())->live(env);
}

void registerDistributed(Napi::Env env, Napi::Object exports, Addon& addon) {
  auto syncClass = GradientSyncWrap::define(env);
  addon.gradientSyncConstructor = Napi::Persistent(syncClass);
  exports.Set("GradientSync", syncClass);
#ifdef FINETORCH_C10D
  auto groupClass = ProcessGroupWrap::define(env);
  addon.processGroupConstructor = Napi::Persistent(groupClass);
  exports.Set("ProcessGroup", groupClass);
#endif
  exports.Set("initProcessGroup", Napi::Function::New<initProcessGroup>(env, "initProcessGroup"));
  exports.Set("distributedSupport", Napi::Function::New<distributedSupport>(env, "distributedSupport"));
}

}  // namespace finetorch
