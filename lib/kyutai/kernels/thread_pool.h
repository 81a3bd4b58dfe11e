// The kernels' own thread pool: n - 1 workers plus the calling thread. Workers spin briefly
// after a job, so that back-to-back products don't pay a wake-up, then sleep on a condition
// variable, so that an idle pool never competes with OpenBLAS or OpenMP for the cores.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace kyutai::kernels {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls task(i) for i in [0, tasks), tasks <= threads(), each on its own thread (task 0 on
  // the caller's), and returns when all are done. Concurrent callers take turns.
  void run(int tasks, const std::function<void(int)>& task);

 private:
  void worker_loop(int index);
  bool wait_for_job(uint64_t seen);
  void wait_until_done();

  std::vector<std::thread> workers_;
  std::mutex dispatch_mutex_;  // one job at a time

  // Guarded by mutex_ (the atomics are also read while spinning).
  std::mutex mutex_;
  std::condition_variable job_cv_;
  std::condition_variable done_cv_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> remaining_{0};
  bool stop_ = false;
  int tasks_ = 0;
  const std::function<void(int)>* task_ = nullptr;
};

// Splits [0, n) into `parts` contiguous ranges and calls fn(begin, end) for each on the process-wide
// pool that matmul and pack use (sized by set_num_threads). The pool's threads claim the ranges
// in order, one at a time, so more parts than threads balance the work between them.
void parallel_ranges(int64_t n, int parts, const std::function<void(int64_t, int64_t)>& fn);

// Calls fn(begin, end) over [0, n) on the same pool, for streaming work (the products): the
// threads claim the next chunk in order, long at first (half a thread's share of what is
// left) and shorter towards the end, never under min_chunk. A thread reads long contiguous
// runs, which the hardware prefetchers follow (with fixed 64 KB ranges kernel-bench read
// 15-40 % less), and a thread that starts late still leaves its share to the others.
void parallel_claims(int64_t n, int64_t min_chunk, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace kyutai::kernels
