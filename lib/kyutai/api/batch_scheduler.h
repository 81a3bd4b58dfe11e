// Internal: many conversations on one LM. Conversations submit their frame and block; one
// batched LmGen step runs for every conversation whose frame is there (a Batcher: batcher.h says
// how the batches are formed). An STT stream may submit its audio instead of its codes: the
// frames of a batch are then encoded with Mimi in one pass just before the step, so that the
// encode and the step form one batch with one wait.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <vector>

#include "kyutai/api/batcher.h"
#include "kyutai/model/lm_generate.h"
#include "kyutai/model/mimi_model.h"

namespace kyutai {

// A frame to encode just before the step: its codes go to *codes, which the step reads.
struct AudioIn {
  const MimiModel* mimi = nullptr;
  at::Tensor frame;  // [1, 1, frame_size] float32, sanitized
  MimiEncoderState* state = nullptr;
  std::vector<int64_t>* codes = nullptr;
};

// Encodes the frames of `audio`, all for the same Mimi model, in one pass into their codes.
void encode_audio(const std::vector<AudioIn*>& audio);

class BatchScheduler {
 public:
  using Clock = std::chrono::steady_clock;

  explicit BatchScheduler(const LmModel& model)
      : gen_(model),
        batcher_([this](std::vector<Row>& rows) { run(rows); }, model.device().is_cpu()) {}

  // A conversation joins before its first step and leaves after its last.
  uint64_t join() { return batcher_.join(); }
  void leave(uint64_t member) { batcher_.leave(member); }

  // Steps `state` with the others whose frames are ready (Batcher::step). `info` gets the wait
  // from submission; `extra_heads` as LmGenRow::extra_heads; `audio`, when given, is encoded
  // first into `user_codes` (audio->codes must be &user_codes). Returns what LmGen::step
  // returns, or throws what it throws. The state must not be used elsewhere until this returns.
  std::optional<std::vector<int64_t>> step(uint64_t member, const std::vector<int64_t>& user_codes,
                                           LmGenState& state, const SamplingParams& params,
                                           double max_wait_ms, StepTiming* info = nullptr,
                                           at::Tensor* extra_heads = nullptr,
                                           AudioIn* audio = nullptr);

  static Clock::time_point due(Clock::time_point submitted, Clock::time_point idle_since,
                               Clock::duration max_wait) {
    return batch_due(submitted, idle_since, max_wait);
  }

 private:
  struct Row {
    LmGenRow lm;
    AudioIn* audio = nullptr;
  };
  void run(std::vector<Row>& rows);

  LmGen gen_;
  Batcher<Row> batcher_;
};

}  // namespace kyutai
