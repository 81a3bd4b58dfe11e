// Helpers of the moshi plugin: the model settings moshilm and moshibin share, and loading Moshi
// with the library's errors turned into element errors.
// Torch-free: it includes only the library's public headers.
#pragma once

#include <gst/gst.h>

#include <memory>
#include <string>

#include "gstkyutai.h"
#include "kyutai/moshi.h"

#define GST_MOSHI_DEFAULT_DTYPE "bfloat16"

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
  int threads = GST_KYUTAI_DEFAULT_THREADS;
};
GstMoshiConfig gst_moshi_settings_copy(GstElement* element, const GstMoshiSettings* settings);

// Finds and loads the LM and its tokenizer, or returns the copy this process already holds. On
// failure posts RESOURCE/SETTINGS (no model, bad device or dtype), RESOURCE/NOT_FOUND (model,
// weights or tokenizer missing) or LIBRARY/INIT (invalid checkpoint, config or tokenizer) and
// returns nullptr.
std::shared_ptr<const kyutai::Moshi> gst_moshi_load_lm(GstElement* element,
                                                       const GstMoshiConfig& config);
