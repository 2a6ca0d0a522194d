// One distributed run's communication, on libtorch's c10d as it is: the rendezvous TCPStore (rank 0
// hosts it), a Gloo (or NCCL) backend for the collectives, and a heartbeat in the store that tells
// which rank was lost when a collective fails.
#pragma once

#ifdef FINETORCH_C10D

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/types.h>
#include <torch/version.h>

namespace finetorch {

// libtorch 2.x split ProcessGroup (the front) from Backend (Gloo, NCCL); on 1.13 the backends
// are ProcessGroups. The collectives are called on the backend either way.
#if TORCH_VERSION_MAJOR >= 2
using CollectiveBackend = c10d::Backend;
#else
using CollectiveBackend = c10d::ProcessGroup;
#endif

struct GroupOptions {
  int rank = 0;
  int worldSize = 1;
  int localRank = 0;
  std::string masterAddr = "127.0.0.1";
  int masterPort = 29500;
  std::chrono::milliseconds timeout{60000};
  std::string backend = "gloo";  // gloo | nccl
};

// Which ranks stopped answering: `storeLost` when the store itself (rank 0's process) is gone.
struct LostRanks {
  bool storeLost = false;
  std::vector<int> ranks;
};

class Group {
 public:
  // Rendezvous: blocks until every rank has joined, or throws after the timeout.
  explicit Group(const GroupOptions& options);
  ~Group();
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;

  int rank() const { return options_.rank; }
  int size() const { return options_.worldSize; }
  const GroupOptions& options() const { return options_; }
  const c10::intrusive_ptr<CollectiveBackend>& backend() const { return backend_; }
  const c10::intrusive_ptr<c10d::Store>& store() const { return store_; }

  // In place, on every rank. `max`: elementwise maximum instead of the sum.
  void allReduce(torch::Tensor& tensor, bool max = false);
  void broadcast(torch::Tensor& tensor, int root);
  // Every rank's `tensor` (all of one shape), concatenated along dim 0 in rank order.
  torch::Tensor allGather(const torch::Tensor& tensor);
  void barrier();
  // A value rank `root` sets and every other rank reads (run names, bucket orders).
  std::string shareString(const std::string& key, const std::string& value, int root);
  // Compares heartbeats across `wait`: the ranks whose counter did not move are gone.
  LostRanks lostRanks(std::chrono::milliseconds wait);
  // Stops the heartbeat and leaves the backend to the process's end: after a peer was lost its
  // threads may wait on sockets that will never answer, so it is not destroyed.
  void abandon();

 private:
  void heartbeatLoop();
  c10::intrusive_ptr<c10d::TCPStore> connect(bool server, std::chrono::milliseconds timeout) const;

  GroupOptions options_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<CollectiveBackend> backend_;
  std::thread heartbeat_;
  std::mutex heartbeatMutex_;
  std::condition_variable heartbeatWake_;
  bool stopping_ = false;
  int shared_ = 0;  // shareString calls so far: each gets its own key
};

}  // namespace finetorch

#endif  // FINETORCH_C10D
