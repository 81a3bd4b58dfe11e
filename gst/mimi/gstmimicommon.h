// Helpers shared by mimienc and mimidec: the properties both elements have, model loading with
// the library's errors turned into element errors, and the audio/x-mimi caps.
// Torch-free: it includes only the library's public headers.
#pragma once

#include <gst/gst.h>

#include <cstdint>
#include <memory>
#include <string>

#include "gstkyutai.h"
#include "kyutai/codec.h"

enum { PROP_MIMI_0, PROP_MIMI_MODEL, PROP_MIMI_DEVICE, PROP_MIMI_THREADS, PROP_MIMI_LAST };

// The shared properties as plain C data inside the GObject instance, protected by the object
// lock of the element that holds them.
struct GstMimiSettings {
  gchar* model;
  gchar* device;
  gint threads;
};

void gst_mimi_settings_init(GstMimiSettings* settings);
void gst_mimi_settings_clear(GstMimiSettings* settings);
void gst_mimi_install_common_properties(GObjectClass* klass);
// Return FALSE when prop_id is not one of the shared properties. Take the object lock.
gboolean gst_mimi_settings_set_property(GstElement* element, GstMimiSettings* settings,
                                        guint prop_id, const GValue* value);
gboolean gst_mimi_settings_get_property(GstElement* element, GstMimiSettings* settings,
                                        guint prop_id, GValue* value);

// The settings copied at start(), so that streaming never reads properties.
struct GstMimiConfig {
  std::string model;
  std::string device;
  int threads = GST_KYUTAI_DEFAULT_THREADS;
};

GstMimiConfig gst_mimi_settings_copy(GstElement* element, const GstMimiSettings* settings);

// Applies the thread count, finds the model and loads it, or returns the copy this process
// already holds. On failure posts RESOURCE/SETTINGS (empty model, bad device), RESOURCE/NOT_FOUND
// (no such model) or LIBRARY/INIT (invalid checkpoint or configuration) and returns nullptr.
std::shared_ptr<const kyutai::Mimi> gst_mimi_load_model(GstElement* element,
                                                        const GstMimiConfig& config);

// audio/x-mimi caps of one model format and codebook count.
GstCaps* gst_mimi_caps_new(const kyutai::MimiFormat& format, int codebooks);

// Nanoseconds of `samples` at `rate`.
inline GstClockTime gst_mimi_samples_to_time(uint64_t samples, int rate) {
  return gst_util_uint64_scale_int(samples, GST_SECOND, rate);
}
