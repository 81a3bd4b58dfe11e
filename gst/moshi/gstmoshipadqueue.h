// The text pad of moshilm: a source pad with its own streaming thread.
#pragma once

#include <gst/base/gstdataqueue.h>
#include <gst/gst.h>

#include <mutex>

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
