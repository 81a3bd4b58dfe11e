// End of the user's turn, from the STT model's voice-activity heads: once the user has said
// words since the last end of turn, the chosen head's probability of no voice rising above the
// threshold ends the turn. Plain logic, and the structure the element posts and pushes.
#pragma once

#include <gst/gst.h>

#include <vector>

// The name of the element message and of the downstream custom event.
#define GST_KYUTAI_STT_END_OF_TURN "kyutai-stt-end-of-turn"
// The horizons of the voice-activity heads, in the heads' order, and their fields' names.
#define GST_KYUTAI_STT_VAD_HEADS 4
extern const char* const gst_kyutai_stt_vad_fields[GST_KYUTAI_STT_VAD_HEADS];

class GstKyutaiSttTurn {
 public:
  // A word was pushed: the user is speaking.
  void word() { spoke_ = true; }
  // The heads' probabilities of a step (empty: the model has none). True when the turn ends
  // here; it then waits for new words.
  bool step(const std::vector<float>& vad, int head, double threshold);
  void reset() { spoke_ = false; }

 private:
  bool spoke_ = false;
};

// A new "kyutai-stt-end-of-turn" structure: the running time of the audio stepped so far and
// the heads' probabilities (p-0-5s, p-1s, p-2s, p-3s).
GstStructure* gst_kyutai_stt_end_of_turn_new(GstClockTime running_time,
                                             const std::vector<float>& vad);
