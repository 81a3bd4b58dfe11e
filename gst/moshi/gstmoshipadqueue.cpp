#include "gstmoshipadqueue.h"

#include <utility>

static gboolean gst_moshi_pad_queue_full(GstDataQueue*, guint visible, guint, guint64,
                                         gpointer max_items) {
  return visible >= GPOINTER_TO_UINT(max_items);
}

static void gst_moshi_pad_queue_item_free(gpointer data) {
  auto* item = static_cast<GstDataQueueItem*>(data);
  if (item->object) gst_mini_object_unref(item->object);
  g_free(item);
}

GstMoshiPadQueue::GstMoshiPadQueue(GstPad* pad, guint max_items)
    : pad_(GST_PAD(gst_object_ref(pad))),
      queue_(gst_data_queue_new(gst_moshi_pad_queue_full, nullptr, nullptr,
                                GUINT_TO_POINTER(max_items))) {
  gst_data_queue_set_flushing(queue_, TRUE);
  gst_pad_set_activatemode_function_full(pad_, activate, this, nullptr);
}

GstMoshiPadQueue::~GstMoshiPadQueue() {
  gst_data_queue_set_flushing(queue_, TRUE);
  gst_pad_stop_task(pad_);
  gst_object_unref(queue_);
  gst_object_unref(pad_);
}

bool GstMoshiPadQueue::push(GstMiniObject* object) {
  auto* item = g_new0(GstDataQueueItem, 1);
  item->object = object;
  item->visible = TRUE;
  item->size = GST_IS_BUFFER(object) ? gst_buffer_get_size(GST_BUFFER(object)) : 0;
  item->destroy = gst_moshi_pad_queue_item_free;
  if (gst_data_queue_push(queue_, item)) return true;
  gst_moshi_pad_queue_item_free(item);
  return false;
}

// Pushes one queued item; pauses when flushing or after a fatal flow return, which the element
// learns from the pad's last flow return.
void GstMoshiPadQueue::loop(gpointer data) {
  auto* self = static_cast<GstMoshiPadQueue*>(data);
  GstDataQueueItem* item = nullptr;
  if (!gst_data_queue_pop(self->queue_, &item)) {
    gst_pad_pause_task(self->pad_);
    return;
  }
  GstMiniObject* object = std::exchange(item->object, nullptr);
  item->destroy(item);
  if (GST_IS_EVENT(object)) {
    gst_pad_push_event(self->pad_, GST_EVENT(object));
    return;
  }
  const GstFlowReturn ret = gst_pad_push(self->pad_, GST_BUFFER(object));
  if (ret != GST_FLOW_FLUSHING && ret >= GST_FLOW_EOS) return;  // OK, NOT_LINKED, EOS go on
  GST_DEBUG_OBJECT(self->pad_, "pausing: %s", gst_flow_get_name(ret));
  gst_data_queue_set_flushing(self->queue_, TRUE);
  gst_pad_pause_task(self->pad_);
}

// Called with mutex_ held.
void GstMoshiPadQueue::start_task() {
  gst_data_queue_set_flushing(queue_, FALSE);
  gst_pad_start_task(pad_, loop, this, nullptr);
}

gboolean GstMoshiPadQueue::activate(GstPad* pad, GstObject*, GstPadMode mode, gboolean active) {
  auto* self = static_cast<GstMoshiPadQueue*>(pad->activatemodedata);
  if (mode != GST_PAD_MODE_PUSH) return FALSE;
  {
    std::lock_guard<std::mutex> lock(self->mutex_);
    self->active_ = active;
    if (active) {
      self->start_task();
      return TRUE;
    }
    gst_data_queue_set_flushing(self->queue_, TRUE);
  }
  gst_data_queue_flush(self->queue_);
  return gst_pad_stop_task(pad);
}

void GstMoshiPadQueue::flush_start(GstEvent* event) {
  gst_data_queue_set_flushing(queue_, TRUE);
  gst_pad_push_event(pad_, event);  // unblocks a sink holding the task
  gst_pad_pause_task(pad_);
}

void GstMoshiPadQueue::flush_stop(GstEvent* event) {
  gst_data_queue_flush(queue_);
  gst_pad_push_event(pad_, event);
  std::lock_guard<std::mutex> lock(mutex_);
  if (active_) start_task();
}
