#include "kyutai/kernels/thread_pool.h"

#include <algorithm>
#include <cassert>
#include <chrono>
#include <memory>

#include "kyutai/kernels/kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define KYUTAI_CPU_RELAX() _mm_pause()
#else
#define KYUTAI_CPU_RELAX() ((void)0)
#endif

namespace kyutai::kernels {
namespace {

// Long enough to bridge the gap between the products of one layer, short enough that a pool
// idle between two 80 ms steps gives its core back almost at once.
constexpr auto kSpin = std::chrono::microseconds(50);

template <typename Done>
bool spin_until(Done done) {
  const auto deadline = std::chrono::steady_clock::now() + kSpin;
  for (int i = 0;; ++i) {
    if (done()) return true;
    KYUTAI_CPU_RELAX();
    if ((i & 63) == 63 && std::chrono::steady_clock::now() > deadline) return false;
  }
}

}  // namespace

ThreadPool::ThreadPool(int threads) {
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  job_cv_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadPool::run(int tasks, const std::function<void(int)>& task) {
  assert(tasks <= threads());
  if (tasks <= 1 || workers_.empty()) {
    for (int i = 0; i < tasks; ++i) task(i);
    return;
  }
  std::lock_guard<std::mutex> dispatch(dispatch_mutex_);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    task_ = &task;
    tasks_ = tasks;
    remaining_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
  }
  job_cv_.notify_all();
  task(0);
  wait_until_done();
}

void ThreadPool::wait_until_done() {
  if (spin_until([this] { return remaining_.load(std::memory_order_acquire) == 0; })) return;
  std::unique_lock<std::mutex> lock(mutex_);
  done_cv_.wait(lock, [this] { return remaining_.load(std::memory_order_acquire) == 0; });
}

// Returns false when the pool is stopping.
bool ThreadPool::wait_for_job(uint64_t seen) {
  if (spin_until([&] { return generation_.load(std::memory_order_acquire) != seen; })) return true;
  std::unique_lock<std::mutex> lock(mutex_);
  job_cv_.wait(lock, [&] { return stop_ || generation_.load(std::memory_order_acquire) != seen; });
  return !stop_;
}

void ThreadPool::worker_loop(int index) {
  uint64_t seen = 0;
  for (;;) {
    if (!wait_for_job(seen)) return;
    seen = generation_.load(std::memory_order_acquire);
    // Every worker takes part in every job (and counts down) so that `remaining_` needs no
    // per-job bookkeeping; workers beyond the job's task count only count down.
    if (index < tasks_) (*task_)(index);
    if (remaining_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(mutex_);
      done_cv_.notify_one();
    }
  }
}

namespace {

std::mutex g_pool_mutex;
std::shared_ptr<ThreadPool> g_pool;  // guarded by g_pool_mutex

std::shared_ptr<ThreadPool> pool_instance() {
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  if (!g_pool) {
    const unsigned hw = std::thread::hardware_concurrency();
    g_pool = std::make_shared<ThreadPool>(hw == 0 ? 1 : static_cast<int>(hw));
  }
  return g_pool;
}

}  // namespace

void set_num_threads(int n) {
  if (n < 1) n = 1;
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  if (g_pool && g_pool->threads() == n) return;
  // A caller still inside run() on the old pool keeps it alive through its own reference.
  g_pool = std::make_shared<ThreadPool>(n);
}

int num_threads() { return pool_instance()->threads(); }

void parallel_ranges(int64_t n, int parts, const std::function<void(int64_t, int64_t)>& fn) {
  const std::shared_ptr<ThreadPool> pool = pool_instance();
  if (parts > n) parts = static_cast<int>(n);
  const int threads = std::min(parts, pool->threads());
  if (threads <= 1) {
    if (n > 0) fn(0, n);
    return;
  }
  // Every thread claims the next range until none is left, so a thread that starts late (woken
  // from its sleep, or its core lent to another process for a while) leaves its share to the
  // others instead of making them wait: a product never takes longer than the threads that run.
  std::atomic<int> next{0};
  pool->run(threads, [&](int) {
    for (int i = next.fetch_add(1, std::memory_order_relaxed); i < parts;
         i = next.fetch_add(1, std::memory_order_relaxed))
      fn(n * i / parts, n * (i + 1) / parts);
  });
}

void parallel_claims(int64_t n, int64_t min_chunk,
                     const std::function<void(int64_t, int64_t)>& fn) {
  const std::shared_ptr<ThreadPool> pool = pool_instance();
  min_chunk = std::max<int64_t>(1, min_chunk);
  const int threads =
      static_cast<int>(std::min<int64_t>(n / min_chunk + (n % min_chunk != 0), pool->threads()));
  if (threads <= 1) {
    if (n > 0) fn(0, n);
    return;
  }
  // Guided claims: a claim takes half of its share of what is left, and never less than
  // min_chunk, so that the first claims are long runs of contiguous memory and the last
  // ones are short enough to balance the threads.
  std::atomic<int64_t> next{0};
  pool->run(threads, [&](int) {
    int64_t begin = next.load(std::memory_order_relaxed);
    while (begin < n) {
      const int64_t left = n - begin;
      const int64_t chunk = std::min(left, std::max(min_chunk, left / (2 * threads)));
      if (!next.compare_exchange_weak(begin, begin + chunk, std::memory_order_relaxed)) continue;
      fn(begin, begin + chunk);
      begin = next.load(std::memory_order_relaxed);
    }
  });
}

}  // namespace kyutai::kernels
