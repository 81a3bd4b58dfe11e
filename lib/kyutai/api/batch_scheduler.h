// Internal: many conversations on one model. Conversations submit their frame and block; one
// batched LmGen step runs for every conversation whose frame is there (docs/ELEMENTS.md,
// "Scaling"). There is no thread of its own: the first conversation whose wait is over leads
// the step, in its own thread, and the others get their results from it.
#pragma once

#include <chrono>
#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

#include "kyutai/api/step_log.h"
#include "kyutai/model/lm_generate.h"

namespace kyutai {

class BatchScheduler {
 public:
  using Clock = std::chrono::steady_clock;

  explicit BatchScheduler(const LmModel& model) : gen_(model) {}
  BatchScheduler(const BatchScheduler&) = delete;
  BatchScheduler& operator=(const BatchScheduler&) = delete;

  // A conversation joins before its first step and leaves after its last.
  uint64_t join();
  void leave(uint64_t member);

  // Steps `state` with the others whose frames are ready, waiting at most `max_wait_ms` for
  // the conversations that took part in the last steps and have not submitted yet (counted
  // from when a step could start: see due()). `info` gets the wait from submission;
  // `extra_heads` as LmGenRow::extra_heads. Returns
  // what LmGen::step returns, or throws what it throws. The state must not be used elsewhere
  // until this returns.
  std::optional<std::vector<int64_t>> step(uint64_t member, const std::vector<int64_t>& user_codes,
                                           LmGenState& state, const SamplingParams& params,
                                           double max_wait_ms, StepTiming* info = nullptr,
                                           at::Tensor* extra_heads = nullptr);

  // The batch deadline: a request submitted at `submitted` waits for the others until
  // `max_wait` after the scheduler was free to step it, that is after the later of its
  // submission and the end of the last step (`idle_since`). The time spent behind a running
  // step is not spent waiting for the others: counted from submission, the deadline of a
  // conversation that missed a step passes while the device runs it (whenever a step takes
  // longer than the wait), the next step then starts at once without the conversations just
  // served, and batches split in two alternating halves exactly when the device is busiest.
  static Clock::time_point due(Clock::time_point submitted, Clock::time_point idle_since,
                               Clock::duration max_wait) {
    return std::max(submitted, idle_since) + max_wait;
  }

 private:
  struct Request {
    uint64_t member = 0;
    LmGenRow row;
    Clock::time_point submitted;
    Clock::duration max_wait{};
    StepTiming info;
    bool done = false;
  };
  // Whether a step should start now (lock held): every expected conversation has submitted, or
  // the earliest deadline has passed.
  bool ready(Clock::time_point now) const;
  // When the next step starts even if not every expected conversation has submitted (lock
  // held, requests pending).
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
  Clock::time_point idle_since_{};  // when the last step ended
};

}  // namespace kyutai
