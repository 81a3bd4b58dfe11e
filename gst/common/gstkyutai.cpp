#include "gstkyutai.h"

#include "kyutai/codec.h"

static const GParamFlags kReadyFlags =
    static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);

GParamSpec* gst_kyutai_param_spec_device() {
  return g_param_spec_string("device", "Device",
                             "Where the model runs: cpu, or cuda / cuda:N with a CUDA build of "
                             "libtorch",
                             GST_KYUTAI_DEFAULT_DEVICE, kReadyFlags);
}

GParamSpec* gst_kyutai_param_spec_threads() {
  return g_param_spec_int("threads", "Threads",
                          "Compute threads, 0 for one per core. Process-wide: it applies to every "
                          "model of the process, and the element that started last wins",
                          0, 1024, GST_KYUTAI_DEFAULT_THREADS, kReadyFlags);
}

void gst_kyutai_replace_string(GstElement* element, gchar** field, const GValue* value) {
  GST_OBJECT_LOCK(element);
  g_free(*field);
  *field = g_value_dup_string(value);
  GST_OBJECT_UNLOCK(element);
}

void gst_kyutai_post_error(GstElement* element, GQuark domain, gint code, const std::string& text,
                           const std::string& detail, const char* file, const char* function,
                           int line) {
  gst_element_message_full(element, GST_MESSAGE_ERROR, domain, code, g_strdup(text.c_str()),
                           detail.empty() ? nullptr : g_strdup(detail.c_str()), file, function,
                           line);
}

bool gst_kyutai_check_device(GstElement* element, const std::string& device, const char* what) {
  try {
    kyutai::check_device(device);
    return true;
  } catch (const std::exception& e) {
    GST_KYUTAI_POST_ERROR(element, RESOURCE, SETTINGS,
                          std::string("Cannot run ") + what + " on device '" + device + "'.",
                          e.what());
    return false;
  }
}
