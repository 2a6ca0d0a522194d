// One native compute thread per addon instance. Every heavy call (forward, train step, load, save)
// is queued here and answered with a Promise: the event loop never blocks, libuv's pool stays free
// for sharp and fs, and libtorch's OpenMP team is never split between competing threads.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <napi.h>

#include "errors.h"

namespace finetorch {

class ComputeQueue {
 public:
  struct Job {
    std::function<void()> run;                     // on the compute thread
    std::function<Napi::Value(Napi::Env)> settle;  // on the JS thread, after run succeeded
    Napi::Promise::Deferred deferred;
    std::string error;
    bool failed = false;
    explicit Job(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
  };

  explicit ComputeQueue(Napi::Env env, int threads);
  ~ComputeQueue();

  Napi::Promise submit(Napi::Env env, std::unique_ptr<Job> job);

  void setThreads(int threads) { threads_.store(threads); }
  int threads() const { return threads_.load(); }

  // Runs `work` on the compute thread; `toJs` turns its result into a JS value afterwards.
  template <typename Result>
  Napi::Promise run(Napi::Env env, std::function<Result()> work,
                    std::function<Napi::Value(Napi::Env, Result&)> toJs) {
    auto job = std::make_unique<Job>(env);
    auto result = std::make_shared<Result>();
    job->run = [work = std::move(work), result] { *result = work(); };
    job->settle = [toJs = std::move(toJs), result](Napi::Env e) { return toJs(e, *result); };
    return submit(env, std::move(job));
  }

 private:
  void loop();
  static void settleOnJsThread(Napi::Env env, Napi::Function, ComputeQueue* queue, Job* job);

  using Tsfn = Napi::TypedThreadSafeFunction<ComputeQueue, Job, settleOnJsThread>;
  Tsfn tsfn_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::unique_ptr<Job>> jobs_;
  bool stopping_ = false;
  std::atomic<int> threads_;
  int pending_ = 0;  // JS thread only: jobs submitted and not yet settled
};

}  // namespace finetorch
