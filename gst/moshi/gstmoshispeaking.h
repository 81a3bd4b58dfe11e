// Whose turn it is, from moshilm's side: Moshi starts speaking at the first step with text
// after silence, and stops once `hold` steps in a row have had none (padding only). moshilm
// posts an element message at each change ("moshi-speaking-started", "moshi-speaking-stopped",
// with the field running-time), so that a bot can tell Moshi's turn from the user's.
#pragma once

#include <gst/gst.h>

#define GST_MOSHI_SPEAKING_STARTED "moshi-speaking-started"
#define GST_MOSHI_SPEAKING_STOPPED "moshi-speaking-stopped"
// 6 frames, 0.48 s: about a pause between sentences; shorter pauses between words keep the turn.
#define GST_MOSHI_SPEAKING_DEFAULT_HOLD 6

class GstMoshiSpeaking {
 public:
  // One step of `duration` at running time `running_time`, with text or not. Returns the
  // message to post for a change, or nullptr.
  GstMessage* step(GstObject* source, bool text, GstClockTime running_time,
                   GstClockTime duration, guint hold);
  // The conversation ended: a "stopped" message when Moshi was speaking, or nullptr.
  GstMessage* end(GstObject* source);
  void reset();

 private:
  bool speaking_ = false;
  guint silent_steps_ = 0;
  GstClockTime last_text_end_ = GST_CLOCK_TIME_NONE;  // running time
};

// The `speaking-hold` property.
GParamSpec* gst_moshi_speaking_hold_param_spec();
