// Public: whether a stream steps together with the other streams of its model, and how long it
// waits for them. Moshi conversations and STT streams batch their LM steps (moshi.h, stt.h): in
// a batched step each gets exactly what it would get alone (on the CPU). Mimi encoders batch
// their frames (mimi.h), to float rounding. Products read the weights once for all. Off by
// default in the library: one thread that steps several streams in turn would wait for itself at
// each step.
#pragma once

namespace kyutai {

struct BatchOptions {
  bool enabled = false;
  // The longest a step waits for the streams that took part in the last steps. A stream that
  // misses a step is not waited for again until it submits.
  double max_wait_ms = 5.0;
};

}  // namespace kyutai
