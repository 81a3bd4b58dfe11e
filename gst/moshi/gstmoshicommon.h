// Helpers of the moshi plugin: the model settings moshilm and moshibin share, loading Moshi with
// the library's errors turned into element errors, and the audio/x-mimi caps.
// Torch-free: it includes only the library's public headers.
#pragma once

#include <gst/gst.h>

#include <memory>
#include <string>

#include "kyutai/moshi.h"

#define GST_MOSHI_MIMI_MEDIA_TYPE "audio/x-mimi"
#define GST_MOSHI_MAX_CODEBOOKS 32
#define GST_MOSHI_MIMI_CAPS                                                                 \
  "audio/x-mimi, rate = (int) [ 1, MAX ], channels = (int) 1, frame-size = (int) [ 1, MAX ], " \
  "codebooks = (int) [ 1, 32 ], cardinality = (int) [ 1, 65536 ]"

#define GST_MOSHI_DEFAULT_MODEL "kyutai/moshiko-pytorch-bf16"
#define GST_MOSHI_DEFAULT_DEVICE "cpu"
#define GST_MOSHI_DEFAULT_DTYPE "bfloat16"
#define GST_MOSHI_DEFAULT_THREADS 0

// Offsets of the settings' properties from the first id an element gives them.
enum { GST_MOSHI_PROP_MODEL, GST_MOSHI_PROP_DEVICE, GST_MOSHI_PROP_DTYPE, GST_MOSHI_PROP_THREADS };

// The model settings as plain C data inside the GObject instance, under its object lock.
struct GstMoshiSettings {
  gchar* model;
  gchar* device;
  gchar* dtype;
  gint threads;
};

void gst_moshi_settings_init(GstMoshiSettings* settings);
void gst_moshi_settings_clear(GstMoshiSettings* settings);
// Installs model, device, dtype and threads with ids first, first + 1, ...
void gst_moshi_install_settings_properties(GObjectClass* klass, guint first);
// `offset` is the property id minus the first one; FALSE when it is not a setting.
gboolean gst_moshi_settings_set_property(GstElement* element, GstMoshiSettings* settings,
                                         guint offset, const GValue* value);
gboolean gst_moshi_settings_get_property(GstElement* element, GstMoshiSettings* settings,
                                         guint offset, GValue* value);

// The settings copied at start, so that streaming never reads properties.
struct GstMoshiConfig {
  std::string model, device, dtype;
  int threads = GST_MOSHI_DEFAULT_THREADS;
};
GstMoshiConfig gst_moshi_settings_copy(GstElement* element, const GstMoshiSettings* settings);

// Finds and loads the LM and its tokenizer, or returns the copy this process already holds. On
// failure posts RESOURCE/SETTINGS (no model, bad device or dtype), RESOURCE/NOT_FOUND (model,
// weights or tokenizer missing) or LIBRARY/INIT (invalid checkpoint, config or tokenizer) and
// returns nullptr.
std::shared_ptr<const kyutai::Moshi> gst_moshi_load_lm(GstElement* element,
                                                       const GstMoshiConfig& config);

void gst_moshi_post_error(GstElement* element, GQuark domain, gint code, const std::string& text,
                          const std::string& detail, const char* file, const char* function,
                          int line);

// Runs `body`; an exception becomes an element error of `domain`/`code` with `what` as the
// sentence for the user. Returns false after posting.
template <typename Body>
bool gst_moshi_try(GstElement* element, GQuark domain, gint code, const char* what, Body&& body) {
  try {
    body();
    return true;
  } catch (const std::exception& e) {
    gst_moshi_post_error(element, domain, code, what, e.what(), __FILE__, GST_FUNCTION, __LINE__);
  } catch (...) {
    gst_moshi_post_error(element, domain, code, what, "unknown exception", __FILE__, GST_FUNCTION,
                         __LINE__);
  }
  return false;
}
