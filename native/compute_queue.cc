#include "compute_queue.h"

#include <ATen/Parallel.h>

namespace finetorch {

ComputeQueue::ComputeQueue(Napi::Env env, int threads) : threads_(threads) {
  tsfn_ = Tsfn::New(env, "finetorch.compute", 0, 1, this);
  tsfn_.Unref(env);  // an idle queue must not keep the process alive
  thread_ = std::thread([this] { loop(); });
}

ComputeQueue::~ComputeQueue() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  ready_.notify_all();
  tsfn_.Abort();
  if (thread_.joinable()) thread_.join();
}

Napi::Promise ComputeQueue::submit(Napi::Env env, std::unique_ptr<Job> job) {
  auto promise = job->deferred.Promise();
  if (pending_++ == 0) tsfn_.Ref(env);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    jobs_.push_back(std::move(job));
  }
  ready_.notify_one();
  return promise;
}

void ComputeQueue::loop() {
  int appliedThreads = -1;
  for (;;) {
    std::unique_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      ready_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (stopping_) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    // OpenMP's thread count is per calling thread: set it here, not on the JS thread.
    int wanted = threads_.load();
    if (wanted != appliedThreads) {
      at::set_num_threads(wanted);
      appliedThreads = wanted;
    }
    try {
      job->run();
    } catch (const std::exception& error) {
      job->failed = true;
      job->error = messageOf(error);
    } catch (...) {
      job->failed = true;
      job->error = "unknown native error";
    }
    Job* raw = job.release();
    if (tsfn_.BlockingCall(raw) != napi_ok) delete raw;  // the environment is shutting down
  }
}

void ComputeQueue::settleOnJsThread(Napi::Env env, Napi::Function, ComputeQueue* queue, Job* job) {
  std::unique_ptr<Job> owned(job);
  if (env == nullptr) return;  // torn down before delivery
  if (--queue->pending_ == 0) queue->tsfn_.Unref(env);
  if (owned->failed) {
    owned->deferred.Reject(Napi::Error::New(env, owned->error).Value());
    return;
  }
  try {
    owned->deferred.Resolve(owned->settle(env));
  } catch (const Napi::Error& error) {
    owned->deferred.Reject(error.Value());
  } catch (const std::exception& error) {
    owned->deferred.Reject(Napi::Error::New(env, messageOf(error)).Value());
  }
}

}  // namespace finetorch
