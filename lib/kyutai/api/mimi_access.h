// Internal: what the library's other streams see of a MimiEncoder. An STT stream encodes its
// frame inside its own batched step (stt.cpp, batch_scheduler.h's AudioIn), with the encoder's
// checks and the encoder's per-stream state.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <cstdint>

#include "kyutai/mimi.h"
#include "kyutai/model/mimi_model.h"

namespace kyutai {

struct MimiEncoder::State {
  MimiEncoderState stream;
  BatchOptions batch;
  uint64_t member = 0;  // in the Mimi object's batcher, when batched
  int last_batch_size = 1;
};

struct MimiEncoderAccess {
  static MimiEncoderState& state(MimiEncoder& e) { return e.state_->stream; }
  static const MimiModel& model(const MimiEncoder& e) { return e.mimi().model(); }
  // The frame as encode_frame takes it: exactly one frame (else InputError), non-finite samples
  // as 0 and the others clamped; a [1, 1, frame_size] float32 copy.
  static at::Tensor frame(const MimiEncoder& e, const float* pcm, size_t samples);
};

}  // namespace kyutai
