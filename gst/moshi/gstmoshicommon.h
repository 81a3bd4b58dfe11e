// Helpers of the moshi plugin: the model settings moshilm and moshibin share, loading Moshi
// with the library's errors turned into element errors, and a source pad with its own
// streaming thread.
// Torch-free: it includes only the library's public headers.
#pragma once

#include <gst/base/gstdataqueue.h>
#include <gst/gst.h>

#include <memory>
#include <mutex>
#include <string>

#include "gstkyutai.h"
#include "kyutai/moshi.h"

// Installs model (documented for Moshi's repositories), device, threads, weights and dtype from
// `first`.
void gst_moshi_install_settings(GObjectClass* klass, guint first);

// Finds and loads the LM and its tokenizer, or returns the copy this process already holds,
// posting PROGRESS messages (code "load-model") from START to COMPLETE, or ERROR, and logging
// (INFO) the weight format `auto` chose. On failure posts RESOURCE/SETTINGS (no model, bad
// device or weight format), RESOURCE/NOT_FOUND (model, weights or tokenizer missing) or
// LIBRARY/INIT (invalid checkpoint, config or tokenizer) and returns nullptr.
std::shared_ptr<const kyutai::Moshi> gst_moshi_load_lm(GstElement* element,
                                                       const GstKyutaiConfig& config);

// A source pad with its own streaming thread, as behind a queue: the element's streaming
// thread queues buffers and serialized events (in order, at most `max_items` waiting) and a
// task of the pad pushes them. A sink that blocks on this pad (prerolling, or waiting for the
// clock) then never blocks the element's other source pads. The pad's activation starts and
// stops the task; the element passes FLUSH_START and FLUSH_STOP through flush_start() and
// flush_stop().
class GstMoshiPadQueue {
 public:
  GstMoshiPadQueue(GstPad* pad, guint max_items);
  ~GstMoshiPadQueue();
  GstMoshiPadQueue(const GstMoshiPadQueue&) = delete;
  GstMoshiPadQueue& operator=(const GstMoshiPadQueue&) = delete;

  // Queues a buffer or a serialized event, waiting while the queue is full. Returns false and
  // drops it while flushing, inactive, or stopped by a fatal flow return; the pad's last flow
  // return then says why (gst_flow_combiner_update_pad_flow reads it).
  bool push(GstMiniObject* object);
  void flush_start(GstEvent* event);
  void flush_stop(GstEvent* event);

 private:
  static gboolean activate(GstPad* pad, GstObject* parent, GstPadMode mode, gboolean active);
  static void loop(gpointer data);
  void start_task();

  GstPad* pad_;
  GstDataQueue* queue_;
  std::mutex mutex_;     // orders activation against a FLUSH_STOP restarting the task
  bool active_ = false;  // under mutex_
};
