// Signs of life while a model loads (the 7B reads 15 GB in READY -> PAUSED): PROGRESS messages
// on the bus and an INFO line saying what was loaded. Torch-free.
#pragma once

#include <gst/gst.h>

#include <string>

#include "kyutai/progress.h"

// The code of every PROGRESS message about loading a model.
#define GST_KYUTAI_PROGRESS_LOAD "load-model"

// One model load seen from the bus: START when made, CONTINUE from callback() (at most one per
// whole percent, with the percentage in the text and in the "percent" field), then COMPLETE
// from complete(), or ERROR when destroyed before it (a load that failed). `what` names the
// model for the user ("Mimi", "Moshi"), `spec` is the model property's value. Use it on the
// thread that loads (the state change's); messages are posted from that thread.
class GstKyutaiLoadProgress {
 public:
  GstKyutaiLoadProgress(GstElement* element, const char* what, const std::string& spec);
  ~GstKyutaiLoadProgress();
  GstKyutaiLoadProgress(const GstKyutaiLoadProgress&) = delete;
  GstKyutaiLoadProgress& operator=(const GstKyutaiLoadProgress&) = delete;

  // For the library's loaders; valid while this object lives.
  kyutai::LoadProgress callback();
  // The model `weights` is in memory: posts COMPLETE and logs the path, the file's size and
  // the time taken at INFO. A load that never reported progress was served from the process's
  // shared copy (START and COMPLETE only).
  void complete(const std::string& weights);

 private:
  void post(GstProgressType type, const std::string& text, int percent);
  void fraction_done(double fraction);

  GstElement* element_;
  std::string what_, spec_;
  gint64 start_us_;
  int percent_ = 0;      // the last message's
  bool loaded_ = false;  // the library reported progress: not the process's shared copy
  bool done_ = false;
};
