// Internal: one stream's steps through the LM, shared by a Moshi conversation and an STT
// stream: alone, or batched with the other streams of its model through their scheduler, and
// timed into the stream's StepLog (the statistics are owned once, here).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "kyutai/api/batch_scheduler.h"
#include "kyutai/api/step_log.h"
#include "kyutai/model/lm_generate.h"

namespace kyutai {

// A model's batch scheduler, made on first use: the public model objects (Moshi, Stt) hold one
// beside their immutable weights. Thread-safe.
class SchedulerSlot {
 public:
  std::shared_ptr<BatchScheduler> get(const LmModel& model);

 private:
  std::mutex mutex_;
  std::shared_ptr<BatchScheduler> scheduler_;  // under mutex_
};

class LmStepper {
 public:
  // `scheduler`: the model's, to step batched; null to step alone.
  LmStepper(const LmModel& model, uint64_t seed, KvCacheFormat kv,
            std::shared_ptr<BatchScheduler> scheduler, double max_wait_ms);
  ~LmStepper();
  LmStepper(const LmStepper&) = delete;
  LmStepper& operator=(const LmStepper&) = delete;

  // One LmGen step of this stream; `timing` gets how it went, as the log records it.
  // `extra_heads`: as LmGenRow::extra_heads.
  // `audio`: a frame encoded into `codes` first (BatchScheduler::step), in the same batch.
  std::optional<std::vector<int64_t>> step(const std::vector<int64_t>& codes,
                                           const SamplingParams& params, StepTiming* timing,
                                           at::Tensor* extra_heads = nullptr,
                                           AudioIn* audio = nullptr);
  // A new stream: a fresh state with `seed`, and no steps in the log.
  void reset(uint64_t seed);
  int64_t steps() const { return state_.offset; }
  StepLog& log() { return log_; }
  const StepLog& log() const { return log_; }

 private:
  LmGen gen_;
  LmGenState state_;
  std::shared_ptr<BatchScheduler> scheduler_;  // null when not batched
  uint64_t member_ = 0;
  double max_wait_ms_ = 0;
  StepLog log_;
};

}  // namespace kyutai
