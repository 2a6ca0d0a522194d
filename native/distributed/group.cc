#ifdef FINETORCH_C10D

#include "group.h"

#include <cstdlib>
#include <stdexcept>

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "../errors.h"

namespace finetorch {

namespace {

constexpr auto kHeartbeatInterval = std::chrono::milliseconds(250);

std::string heartbeatKey(int rank) { return "finetorch/heartbeat/" + std::to_string(rank); }
std::string joinedKey(int rank) { return "finetorch/joined/" + std::to_string(rank); }

bool isLoopback(const std::string& address) {
  return address == "localhost" || address.rfind("127.", 0) == 0 || address == "::1";
}

std::string seconds(std::chrono::milliseconds ms) {
  auto text = std::to_string(ms.count() / 1000.0);
  return text.substr(0, text.find('.') + 2) + " s";
}

// Gloo's own sockets: GLOO_SOCKET_IFNAME as in PyTorch, loopback for a single-host run on
// 127.0.0.1, else the address this machine's hostname resolves to (PyTorch's default).
std::shared_ptr<::gloo::transport::Device> glooDevice(const std::string& masterAddr) {
  if (const char* interface = std::getenv("GLOO_SOCKET_IFNAME"); interface && *interface) {
    return c10d::ProcessGroupGloo::createDeviceForInterface(interface);
  }
  if (isLoopback(masterAddr)) return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

}  // namespace

c10::intrusive_ptr<c10d::TCPStore> Group::connect(bool server, std::chrono::milliseconds timeout) const {
  c10d::TCPStoreOptions store;
  store.port = static_cast<std::uint16_t>(options_.masterPort);
  store.isServer = server;
  store.numWorkers = options_.worldSize;
  store.waitWorkers = false;
  store.timeout = timeout;
  return c10::make_intrusive<c10d::TCPStore>(options_.masterAddr, store);
}

Group::Group(const GroupOptions& options) : options_(options) {
  const std::string where = options.masterAddr + ":" + std::to_string(options.masterPort);
  try {
    store_ = connect(options.rank == 0, options.timeout);
  } catch (const std::exception& error) {
    if (options.rank == 0) {
      throw std::runtime_error("rank 0 could not open the rendezvous store on " + where + ": " + messageOf(error) +
                               " (is another run using this port? choose another with --master-port / MASTER_PORT)");
    }
    throw std::runtime_error("rank " + std::to_string(options.rank) + " could not reach the master at " + where + " within " +
                             seconds(options.timeout) + ": " + messageOf(error) + " (is rank 0 running, and MASTER_ADDR/MASTER_PORT right?)");
  }
  // every rank checks in, so the missing ones are named instead of a bare timeout
  store_->set(joinedKey(options.rank), std::vector<uint8_t>{1});
  std::vector<std::string> everyone;
  for (int r = 0; r < options.worldSize; r++) everyone.push_back(joinedKey(r));
  try {
    store_->wait(everyone, options.timeout);
  } catch (const std::exception&) {
    std::string missing;
    for (int r = 0; r < options.worldSize; r++) {
      if (!store_->check({joinedKey(r)})) missing += (missing.empty() ? "" : ", ") + std::to_string(r);
    }
    throw std::runtime_error("rank(s) " + missing + " of " + std::to_string(options.worldSize) + " did not join at " + where + " within " +
                             seconds(options.timeout) + " (dist_timeout): start every rank with the same WORLD_SIZE, MASTER_ADDR and MASTER_PORT");
  }
  store_->add(heartbeatKey(options.rank), 1);
  auto prefixed = c10::make_intrusive<c10d::PrefixStore>("finetorch/" + options.backend, store_);
  if (options.backend == "nccl") {
#ifdef USE_C10D_NCCL
    auto nccl = c10d::ProcessGroupNCCL::Options::create();
    nccl->timeout = options.timeout;
    backend_ = c10::make_intrusive<c10d::ProcessGroupNCCL>(prefixed, options.rank, options.worldSize, nccl);
#else
    throw std::runtime_error("this libtorch has no NCCL (or finetorch was built without nccl.h): use backend gloo");
#endif
  } else {
    auto gloo = c10d::ProcessGroupGloo::Options::create(options.timeout);
    gloo->devices.push_back(glooDevice(options.masterAddr));
    gloo->threads = 2;
    backend_ = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, options.rank, options.worldSize, gloo);
  }
  heartbeat_ = std::thread([this] { heartbeatLoop(); });
}

Group::~Group() {
  {
    std::lock_guard<std::mutex> lock(heartbeatMutex_);
    stopping_ = true;
  }
  heartbeatWake_.notify_all();
  if (heartbeat_.joinable()) heartbeat_.join();
}

void Group::abandon() {
  {
    std::lock_guard<std::mutex> lock(heartbeatMutex_);
    stopping_ = true;
  }
  heartbeatWake_.notify_all();
  if (heartbeat_.joinable()) heartbeat_.join();
  // one extra reference each, deliberately leaked (see the header): never destroyed, while work
  // already queued (and a flat-bucket sync) can still reach them and fail cleanly
  new c10::intrusive_ptr<CollectiveBackend>(backend_);
  new c10::intrusive_ptr<c10d::Store>(store_);
}

// Its own store connection, so a collective blocked on the compute thread never delays it.
void Group::heartbeatLoop() {
  c10::intrusive_ptr<c10d::TCPStore> store;
  try {
    store = connect(false, options_.timeout);
  } catch (const std::exception&) {
    return;  // the store is gone already: lostRanks() reports that
  }
  std::unique_lock<std::mutex> lock(heartbeatMutex_);
  while (!stopping_) {
    lock.unlock();
    try {
      store->add(heartbeatKey(options_.rank), 1);
    } catch (const std::exception&) {
      return;
    }
    lock.lock();
    heartbeatWake_.wait_for(lock, kHeartbeatInterval, [this] { return stopping_; });
  }
}

LostRanks Group::lostRanks(std::chrono::milliseconds wait) {
  LostRanks lost;
  c10::intrusive_ptr<c10d::TCPStore> store;
  std::vector<int64_t> before(options_.worldSize);
  try {
    store = connect(false, std::chrono::milliseconds(3000));
    for (int r = 0; r < options_.worldSize; r++) before[r] = store->add(heartbeatKey(r), 0);
  } catch (const std::exception&) {
    lost.storeLost = true;
    lost.ranks.push_back(0);
    return lost;
  }
  std::this_thread::sleep_for(std::max(wait, kHeartbeatInterval * 4));
  for (int r = 0; r < options_.worldSize; r++) {
    if (r == options_.rank) continue;
    try {
      if (store->add(heartbeatKey(r), 0) == before[r]) lost.ranks.push_back(r);
    } catch (const std::exception&) {
      lost.storeLost = true;
      lost.ranks = {0};
      return lost;
    }
  }
  return lost;
}

void Group::allReduce(torch::Tensor& tensor, bool max) {
  std::vector<torch::Tensor> tensors{tensor};
  c10d::AllreduceOptions options;
  options.reduceOp = max ? c10d::ReduceOp::MAX : c10d::ReduceOp::SUM;
  backend_->allreduce(tensors, options)->wait();
}

void Group::broadcast(torch::Tensor& tensor, int root) {
  std::vector<torch::Tensor> tensors{tensor};
  c10d::BroadcastOptions options;
  options.rootRank = root;
  backend_->broadcast(tensors, options)->wait();
}

torch::Tensor Group::allGather(const torch::Tensor& tensor) {
  auto input = tensor.contiguous();
  std::vector<std::vector<torch::Tensor>> outputs(1);
  for (int r = 0; r < options_.worldSize; r++) outputs[0].push_back(torch::empty_like(input));
  std::vector<torch::Tensor> inputs{input};
  backend_->allgather(outputs, inputs)->wait();
  return torch::cat(outputs[0]);
}

void Group::barrier() { backend_->barrier()->wait(); }

std::string Group::shareString(const std::string& key, const std::string& value, int root) {
  const std::string storeKey = "finetorch/shared/" + std::to_string(shared_++) + "/" + key;
  if (options_.rank == root) {
    store_->set(storeKey, std::vector<uint8_t>(value.begin(), value.end()));
    return value;
  }
  auto bytes = store_->get(storeKey);  // waits up to the store's timeout
  return std::string(bytes.begin(), bytes.end());
}

}  // namespace finetorch

#endif  // FINETORCH_C10D
