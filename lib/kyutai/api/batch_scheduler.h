// Internal: many conversations on one LM. Conversations submit their frame and block; one
// batched LmGen step runs for every conversation whose frame is there (a Batcher of LmGenRow
// rows: batcher.h says how the batches are formed).
#pragma once

#include <optional>
#include <vector>

#include "kyutai/api/batcher.h"
#include "kyutai/model/lm_generate.h"

namespace kyutai {

class BatchScheduler {
 public:
  using Clock = Batcher<LmGenRow>::Clock;

  explicit BatchScheduler(const LmModel& model)
      : gen_(model), batcher_([this](std::vector<LmGenRow>& rows) { gen_.step_batch(rows); }) {}

  // A conversation joins before its first step and leaves after its last.
  uint64_t join() { return batcher_.join(); }
  void leave(uint64_t member) { batcher_.leave(member); }

  // Steps `state` with the others whose frames are ready (Batcher::step). `info` gets the wait
  // from submission; `extra_heads` as LmGenRow::extra_heads. Returns what LmGen::step returns,
  // or throws what it throws. The state must not be used elsewhere until this returns.
  std::optional<std::vector<int64_t>> step(uint64_t member, const std::vector<int64_t>& user_codes,
                                           LmGenState& state, const SamplingParams& params,
                                           double max_wait_ms, StepTiming* info = nullptr,
                                           at::Tensor* extra_heads = nullptr);

  static Clock::time_point due(Clock::time_point submitted, Clock::time_point idle_since,
                               Clock::duration max_wait) {
    return Batcher<LmGenRow>::due(submitted, idle_since, max_wait);
  }

 private:
  LmGen gen_;
  Batcher<LmGenRow> batcher_;
};

}  // namespace kyutai
