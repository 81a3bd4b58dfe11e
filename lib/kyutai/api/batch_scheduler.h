// Internal: many conversations on one model. Conversations submit their frame and block; one
// batched LmGen step runs for every conversation whose frame is there (docs/ELEMENTS.md,
// "Scaling"). There is no thread of its own: the first conversation whose wait is over leads
// the step, in its own thread, and the others get their results from it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

#include "kyutai/model/lm_generate.h"

namespace kyutai {

// How one batched step went, for one of its conversations.
struct BatchStepInfo {
  int batch_size = 0;   // conversations stepped together
  double wait_ms = 0;   // from submitting to the start of the step
  double step_ms = 0;   // the batched step itself
};

class BatchScheduler {
 public:
  explicit BatchScheduler(const LmModel& model) : gen_(model) {}
  BatchScheduler(const BatchScheduler&) = delete;
  BatchScheduler& operator=(const BatchScheduler&) = delete;

  // A conversation joins before its first step and leaves after its last.
  uint64_t join();
  void leave(uint64_t member);

  // Steps `state` with the others whose frames are ready, waiting at most `max_wait_ms` for
  // the conversations that took part in the last steps and have not submitted yet. Returns
  // what LmGen::step returns, or throws what it throws. The state must not be used elsewhere
  // until this returns.
  std::optional<std::vector<int64_t>> step(uint64_t member, const std::vector<int64_t>& user_codes,
                                           LmGenState& state, const SamplingParams& params,
                                           double max_wait_ms, BatchStepInfo* info = nullptr);

 private:
  using Clock = std::chrono::steady_clock;
  struct Request {
    uint64_t member = 0;
    LmGenRow row;
    Clock::time_point submitted, deadline;
    BatchStepInfo info;
    bool done = false;
  };
  // Whether a step should start now (lock held): every expected conversation has submitted, or
  // the earliest deadline has passed.
  bool ready(Clock::time_point now) const;
  Clock::time_point earliest_deadline() const;
  // Takes every pending request, steps them without the lock, and wakes their owners.
  void lead(std::unique_lock<std::mutex>& lock);

  LmGen gen_;
  std::mutex mutex_;
  std::condition_variable wake_;
  // Under mutex_:
  std::deque<Request*> pending_;
  // Members, and whether the next step waits for them: a member is expected once it submits and
  // until it misses a step, so a paused or stalled conversation delays the others only once.
  std::map<uint64_t, bool> expected_;
  uint64_t next_member_ = 1;
  bool running_ = false;
};

}  // namespace kyutai
