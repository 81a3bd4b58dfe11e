// Internal: a conversation's step statistics, kept once (StepStats in kyutai/moshi.h). The
// conversation's thread records each step; any thread may read a snapshot.
#pragma once

#include <mutex>
#include <vector>

#include "kyutai/moshi.h"

namespace kyutai {

// How one step went for one conversation.
struct StepTiming {
  int batch_size = 1;  // conversations stepped together, this one included
  double wait_ms = 0;  // waiting for the others, before the step
  double step_ms = 0;  // the (batched) step itself
};

class StepLog {
 public:
  void record(const StepTiming& step);
  // Forgets the steps (a new conversation); the frame duration stays.
  void reset();
  void set_frame_ms(double frame_ms);
  StepStats snapshot() const;

 private:
  // Fills the window figures of `s` (lock held).
  void summarize_window(StepStats& s) const;

  mutable std::mutex mutex_;
  // Under mutex_:
  StepStats totals_;                // the figures since the start; no window figures
  std::vector<StepTiming> window_;  // the last StepStats::kWindow steps, a ring
  size_t next_ = 0;                 // the ring's next slot once it is full
  double frame_ms_ = 80;            // Mimi's frame at 12.5 Hz
};

}  // namespace kyutai
