#include "gstmoshicommon.h"

#include <utility>

#include "gstkyutaiprogress.h"
#include "kyutai/error.h"
#include "kyutai/hub.h"
#include "kyutai/runtime.h"
#include "kyutai/weights.h"

void gst_moshi_install_settings(GObjectClass* klass, guint first) {
  gst_kyutai_install_settings(
      klass, first,
      "Moshi as Kyutai's repositories lay it out: a directory (config.json naming the "
      "weights, tokenizer and Mimi; without config.json the Moshi 7B defaults and file "
      "names), its config.json, or a Hugging Face repository id such as "
      "kyutai/moshiko-pytorch-bf16, looked up in the local Hugging Face cache "
      "($HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub; snapshot of "
      "refs/main) and never downloaded. Loaded when going from READY to PAUSED; elements "
      "using the same model, device and weight format share one copy",
      TRUE);
}

// The quantized-weights cache reports to the element: a bad cache file is a warning on the bus
// (it is rebuilt), the file used or written goes to the log.
static kyutai::WeightCacheOptions weight_cache(GstElement* element) {
  kyutai::WeightCacheOptions cache;
  cache.warn = [element](const std::string& what) {
    GST_ELEMENT_WARNING(element, RESOURCE, READ, ("The quantized-weights cache was rebuilt."),
                        ("%s", what.c_str()));
  };
  cache.info = [element](const std::string& what) { GST_INFO_OBJECT(element, "%s", what.c_str()); };
  return cache;
}

// Settings that are wrong whatever the model: model, device and weight format.
static bool check_settings(GstElement* element, const GstKyutaiConfig& config) {
  if (config.model.empty()) {
    GST_KYUTAI_POST_ERROR(element, RESOURCE, SETTINGS,
                          "No Moshi model given: set the 'model' property.", "");
    return false;
  }
  return GST_KYUTAI_CHECK_DEVICE(element, config.device, "Moshi") &&
         GST_KYUTAI_CHECK_WEIGHTS(element, config);
}

std::shared_ptr<const kyutai::Moshi> gst_moshi_load_lm(GstElement* element,
                                                       const GstKyutaiConfig& config) {
  if (!check_settings(element, config)) return nullptr;
  const auto sentence = [&](GstKyutaiErrorCode code) {
    if (gst_kyutai_error_is_not_found(code))
      return "Moshi model '" + config.model + "' not found.";
    return "Cannot load the Moshi model '" + config.model + "'.";
  };
  GstKyutaiLoadProgress progress(element, "Moshi", config.model);
  kyutai::MoshiFiles files;
  std::shared_ptr<const kyutai::Moshi> moshi;
  if (!GST_KYUTAI_TRY(element, LIBRARY, INIT, sentence, [&] {
        files = kyutai::locate_moshi(config.model);
        moshi = kyutai::Moshi::load_shared(files, config.device, config.weights,
                                           weight_cache(element), progress.callback());
      }))
    return nullptr;
  progress.complete(files.weights);
  GST_INFO_OBJECT(element, "%s weights (asked for %s) on device %s",
                  kyutai::weight_format_name(moshi->weight_format()),
                  kyutai::weight_format_name(config.weights), config.device.c_str());
  if (!GST_KYUTAI_TRY(element, RESOURCE, SETTINGS, "Cannot set the number of compute threads.",
                      [&] { kyutai::set_num_threads(config.threads); }))
    return nullptr;
  return moshi;
}

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
