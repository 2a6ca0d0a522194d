#include "cpu_allocator.h"

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

namespace finetorch::cpu_cache {

namespace {

// Blocks below this size stay with malloc, which reuses small chunks well on its own.
constexpr size_t kMinCachedBytes = 1 << 20;

class CachingAllocator final : public c10::Allocator {
 public:
  explicit CachingAllocator(size_t limit) : limit_(limit) {}

  // libtorch 1.x declares allocate() const, 2.x non-const with a pure copy_data(): defining both
  // forms without `override` compiles against either, each overriding the one its base declares.
  c10::DataPtr allocate(size_t n) const { return allocateBlock(n); }
  c10::DataPtr allocate(size_t n) { return allocateBlock(n); }
  void copy_data(void* dest, const void* src, std::size_t count) const { std::memcpy(dest, src, count); }
  c10::DeleterFnPtr raw_deleter() const override { return &freeBlock; }

  Stats stats() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return {cached_, limit_, hits_, true};
  }

  void release() {
    std::vector<void*> blocks;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto& [size, list] : free_) blocks.insert(blocks.end(), list.begin(), list.end());
      free_.clear();
      cached_ = 0;
    }
    for (void* p : blocks) c10::free_cpu(p);
  }

  static CachingAllocator* instance;

 private:
  c10::DataPtr allocateBlock(size_t n) const {
    auto* self = const_cast<CachingAllocator*>(this);
    if (n == 0) return {nullptr, nullptr, &freeBlock, c10::Device(c10::DeviceType::CPU)};
    auto dataPtr = [](void* p) { return c10::DataPtr(p, p, &freeBlock, c10::Device(c10::DeviceType::CPU)); };
    if (n == 0) return dataPtr(nullptr);
    if (n < kMinCachedBytes) return dataPtr(c10::alloc_cpu(n));
    {
      std::lock_guard<std::mutex> lock(self->mutex_);
      auto it = self->free_.find(n);
      if (it != self->free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        self->cached_ -= n;
        self->hits_++;
        self->live_[p] = n;
        return dataPtr(p);
      }
    }
    void* p = c10::alloc_cpu(n);  // outside the lock: it may fault in pages
    std::lock_guard<std::mutex> lock(self->mutex_);
    self->live_[p] = n;
    return dataPtr(p);
  }

  static void freeBlock(void* p) {
    if (!p) return;
    auto* self = instance;
    {
      std::lock_guard<std::mutex> lock(self->mutex_);
      auto it = self->live_.find(p);
      if (it != self->live_.end()) {
        size_t n = it->second;
        self->live_.erase(it);
        if (self->cached_ + n <= self->limit_) {
          self->free_[n].push_back(p);
          self->cached_ += n;
          return;
        }
      }
    }
    c10::free_cpu(p);
  }

  size_t limit_;
  mutable std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> free_;  // by exact size: steps repeat their shapes
  std::unordered_map<void*, size_t> live_;                // large blocks handed out
  size_t cached_ = 0;
  size_t hits_ = 0;
};

CachingAllocator* CachingAllocator::instance = nullptr;
std::once_flag installOnce;

size_t defaultLimit() {
  if (const char* mb = std::getenv("FINETORCH_CPU_CACHE_MB")) return static_cast<size_t>(std::strtoull(mb, nullptr, 10)) << 20;
  long pages = sysconf(_SC_PHYS_PAGES), pageSize = sysconf(_SC_PAGESIZE);
  return pages > 0 && pageSize > 0 ? static_cast<size_t>(pages) * static_cast<size_t>(pageSize) / 4 : size_t{1} << 30;
}

}  // namespace

void install() {
  std::call_once(installOnce, [] {
    const char* optOut = std::getenv("FINETORCH_CPU_CACHE");
    if (optOut && std::strcmp(optOut, "0") == 0) return;
    // deliberately never freed: tensors made through it can outlive every addon instance
    CachingAllocator::instance = new CachingAllocator(defaultLimit());
    c10::SetCPUAllocator(CachingAllocator::instance, /*priority=*/1);
  });
}

Stats stats() {
  return CachingAllocator::instance ? CachingAllocator::instance->stats() : Stats{0, 0, 0, false};
}

void release() {
  if (CachingAllocator::instance) CachingAllocator::instance->release();
#ifdef __GLIBC__
  // and the free pages inside malloc's heap too (its own trim only gives back the top): a model of
  // many 1-30 MiB blocks otherwise leaves holes that RSS keeps (200 ResNet-18 create/dispose
  // cycles drifted 150-1045 MiB depending on what ran before; 9-10 MiB with this)
  malloc_trim(0);
#endif
}

}  // namespace finetorch::cpu_cache
