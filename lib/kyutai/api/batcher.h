// Internal: many streams on one model. Streams submit their frame and block; one batched run
// steps every stream whose frame is there (docs/ELEMENTS.md, "Scaling"). There is no thread of
// its own: the first stream whose wait is over leads the run, in its own thread, and the others
// get their results from it. `Row` is what one stream submits and gets back; `run` steps a
// batch of rows in place. The LM's conversations (BatchScheduler) and Mimi's encoding streams
// (mimi_api.cpp) are batched by it.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include "kyutai/api/step_log.h"

namespace kyutai {

// Held by every batched run whose LM (or, for Mimi's batched encoders, whose Mimi) is on the
// CPU: batchers of different models run one after the other, never side by side. One per copy
// of the library: each GStreamer plugin links its own, so the elements of two plugins in one
// process (kyutaistt beside moshilm) are not kept apart by it.
// Each run already uses every core (the kernels' pool, OpenBLAS); two at once would share them
// with their pools spinning against each other, and streams stepping in turn through two
// batchers would fall into alternating phases (one stream in the encode while another is in the
// step), never meeting in a batch.
inline std::mutex& cpu_run_mutex() {
  static std::mutex mutex;
  return mutex;
}

// The batch deadline: a request submitted at `submitted` waits for the others until `max_wait`
// after the batcher was free to run it, that is after the later of its submission and the end
// of the last run (`idle_since`). The time spent behind a running batch is not spent waiting for
// the others: counted from submission, the deadline of a stream that missed a run passes while
// the device runs it (whenever a run takes longer than the wait), the next run then starts at
// once without the streams just served, and batches split in two alternating halves exactly
// when the device is busiest.
inline std::chrono::steady_clock::time_point batch_due(
    std::chrono::steady_clock::time_point submitted,
    std::chrono::steady_clock::time_point idle_since,
    std::chrono::steady_clock::duration max_wait) {
  return std::max(submitted, idle_since) + max_wait;
}

template <class Row>
class Batcher {
 public:
  using Clock = std::chrono::steady_clock;
  using Run = std::function<void(std::vector<Row>& rows)>;

  // `on_cpu`: the runs take cpu_run_mutex().
  Batcher(Run run, bool on_cpu) : run_(std::move(run)), on_cpu_(on_cpu) {}
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // A stream joins before its first step and leaves after its last.
  uint64_t join() {
    std::lock_guard<std::mutex> lock(mutex_);
    const uint64_t id = next_member_++;
    expected_[id] = false;  // expected from its first submission on
    return id;
  }
  void leave(uint64_t member) {
    std::lock_guard<std::mutex> lock(mutex_);
    expected_.erase(member);
    wake_.notify_all();  // the others may have been waiting for it
  }

  // Runs `row` with the others whose rows are ready, waiting at most `max_wait_ms` for the
  // streams that took part in the last runs and have not submitted yet (counted from when a
  // run could start: see batch_due()). `info` gets the wait from submission. Returns the row as the
  // run left it, or throws what the run threw. What the row points to must not be used
  // elsewhere until this returns.
  Row step(uint64_t member, Row row, double max_wait_ms, StepTiming* info = nullptr) {
    Request request;
    request.member = member;
    request.row = std::move(row);
    request.submitted = Clock::now();
    request.max_wait = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double, std::milli>(std::max(0.0, max_wait_ms)));
    std::unique_lock<std::mutex> lock(mutex_);
    expected_[member] = true;
    pending_.push_back(&request);
    wake_.notify_all();
    while (!request.done) {
      if (ready(Clock::now()))
        lead(lock);
      else if (running_)
        wake_.wait(lock);  // the running batch wakes everyone when it ends
      else
        wake_.wait_until(lock, earliest_deadline());
    }
    lock.unlock();
    if (info) *info = request.info;
    if (request.error) std::rethrow_exception(request.error);
    return std::move(request.row);
  }

 private:
  struct Request {
    uint64_t member = 0;
    Row row;
    Clock::time_point submitted;
    Clock::duration max_wait{};
    StepTiming info;
    std::exception_ptr error;  // the whole run failed
    bool done = false;
  };

  // Whether a run should start now (lock held): every expected stream has submitted, or the
  // earliest deadline has passed.
  bool ready(Clock::time_point now) const {
    if (pending_.empty() || running_) return false;
    if (now >= earliest_deadline()) return true;
    size_t expected = 0, waiting = 0;
    for (const auto& [member, is_expected] : expected_) {
      if (!is_expected) continue;
      ++expected;
      for (const Request* r : pending_) waiting += r->member == member;
    }
    return waiting >= expected;
  }

  // When the next run starts even if not every expected stream has submitted (lock held,
  // requests pending).
  Clock::time_point earliest_deadline() const {
    Clock::time_point earliest = Clock::time_point::max();
    for (const Request* r : pending_)
      earliest = std::min(earliest, batch_due(r->submitted, idle_since_, r->max_wait));
    return earliest;
  }

  // Takes every pending request, runs them without the lock, and wakes their owners.
  void lead(std::unique_lock<std::mutex>& lock) {
    std::vector<Request*> batch(pending_.begin(), pending_.end());
    pending_.clear();
    running_ = true;
    lock.unlock();
    const auto start = Clock::now();
    // Whatever throws here fails the whole batch's rows, and running_ is still cleared below:
    // no member is left waiting.
    std::vector<Row> rows;
    std::exception_ptr failed;
    try {
      rows.reserve(batch.size());
      for (Request* r : batch) rows.push_back(std::move(r->row));
      std::unique_lock<std::mutex> cpu(cpu_run_mutex(), std::defer_lock);
      if (on_cpu_) cpu.lock();
      run_(rows);
    } catch (...) {
      failed = std::current_exception();
    }
    const double run_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    lock.lock();
    for (size_t i = 0; i < batch.size(); ++i) {
      Request& r = *batch[i];
      if (i < rows.size()) r.row = std::move(rows[i]);
      r.error = failed;
      r.info.batch_size = static_cast<int>(batch.size());
      r.info.wait_ms = std::chrono::duration<double, std::milli>(start - r.submitted).count();
      r.info.step_ms = run_ms;
      r.done = true;
    }
    forget_absent(batch);
    running_ = false;
    idle_since_ = Clock::now();
    wake_.notify_all();
  }

  // Who was expected and neither took part in `batch` nor is waiting now is not waited for any
  // more (lock held).
  void forget_absent(const std::vector<Request*>& batch) {
    for (auto& [member, is_expected] : expected_) {
      if (!is_expected) continue;
      auto in = [&](auto begin, auto end) {
        return std::any_of(begin, end, [&](const Request* r) { return r->member == member; });
      };
      if (!in(batch.begin(), batch.end()) && !in(pending_.begin(), pending_.end()))
        is_expected = false;
    }
  }

  Run run_;
  bool on_cpu_;
  std::mutex mutex_;
  std::condition_variable wake_;
  // Under mutex_:
  std::deque<Request*> pending_;
  // Members, and whether the next run waits for them: a member is expected once it submits and
  // until it misses a run, so a paused or stalled stream delays the others only once.
  std::map<uint64_t, bool> expected_;
  uint64_t next_member_ = 1;
  bool running_ = false;
  Clock::time_point idle_since_{};  // when the last run ended
};

}  // namespace kyutai
