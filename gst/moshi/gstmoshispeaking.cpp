#include "gstmoshispeaking.h"

static GstMessage* gst_moshi_speaking_message(GstObject* source, const char* name,
                                              GstClockTime running_time) {
  return gst_message_new_element(
      source, gst_structure_new(name, "running-time", G_TYPE_UINT64, running_time, nullptr));
}

GstMessage* GstMoshiSpeaking::step(GstObject* source, bool text, GstClockTime running_time,
                                   GstClockTime duration, guint hold) {
  if (text) {
    silent_steps_ = 0;
    last_text_end_ = running_time + duration;
    if (speaking_) return nullptr;
    speaking_ = true;
    return gst_moshi_speaking_message(source, GST_MOSHI_SPEAKING_STARTED, running_time);
  }
  if (!speaking_ || ++silent_steps_ < hold) return nullptr;
  return end(source);
}

GstMessage* GstMoshiSpeaking::end(GstObject* source) {
  if (!speaking_) return nullptr;
  speaking_ = false;
  silent_steps_ = 0;
  return gst_moshi_speaking_message(source, GST_MOSHI_SPEAKING_STOPPED, last_text_end_);
}

void GstMoshiSpeaking::reset() {
  speaking_ = false;
  silent_steps_ = 0;
  last_text_end_ = GST_CLOCK_TIME_NONE;
}

GParamSpec* gst_moshi_speaking_hold_param_spec() {
  return g_param_spec_uint(
      "speaking-hold", "Speaking hold",
      "Steps (80 ms frames) of padding only after which Moshi has stopped speaking: moshilm "
      "posts an element message moshi-speaking-started at the first step with text after "
      "silence, and moshi-speaking-stopped (its running-time: the end of the last text) once "
      "this many steps in a row have had none. Can change while playing",
      1, 1000, GST_MOSHI_SPEAKING_DEFAULT_HOLD,
      static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                               GST_PARAM_MUTABLE_PLAYING));
}
