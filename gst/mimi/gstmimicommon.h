// Helpers shared by mimienc and mimidec: the properties both elements have, model loading with
// the library's errors turned into element errors, and the audio/x-mimi caps.
// Torch-free: it includes only the library's public headers.
#pragma once

#include <gst/gst.h>

#include <cstdint>
#include <memory>
#include <string>

#include "kyutai/codec.h"

#define GST_MIMI_MEDIA_TYPE "audio/x-mimi"

// Defaults of the properties both elements have.
#define GST_MIMI_DEFAULT_MODEL "kyutai/moshiko-pytorch-bf16"
#define GST_MIMI_DEFAULT_DEVICE "cpu"
#define GST_MIMI_DEFAULT_THREADS 0

// The widest codebook range the media type allows (the released Mimi has 32).
#define GST_MIMI_MAX_CODEBOOKS 32

// Pad template caps of audio/x-mimi (docs/MEDIA-TYPE.md); elements narrow them to their model.
#define GST_MIMI_TEMPLATE_CAPS                                              \
  GST_MIMI_MEDIA_TYPE                                                       \
      ", rate = (int) [ 1, MAX ], channels = (int) 1, "                     \
      "frame-size = (int) [ 1, MAX ], codebooks = (int) [ 1, " G_STRINGIFY( \
          GST_MIMI_MAX_CODEBOOKS) " ], cardinality = (int) [ 1, 65536 ]"

// Property ids of the shared properties; each element numbers its own from PROP_MIMI_LAST.
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
  int threads = GST_MIMI_DEFAULT_THREADS;
};

GstMimiConfig gst_mimi_settings_copy(GstElement* element, const GstMimiSettings* settings);

// Applies the thread count, finds the model and loads it, or returns the copy this process
// already holds. On failure posts RESOURCE/SETTINGS (empty model, bad device), RESOURCE/NOT_FOUND
// (no such model) or LIBRARY/INIT (invalid checkpoint or configuration) and returns nullptr.
std::shared_ptr<const kyutai::Mimi> gst_mimi_load_model(GstElement* element,
                                                        const GstMimiConfig& config);

// Runs `body` and turns any exception into an element error of `domain`/`code`, with `what` as
// the sentence for the user. Returns false after posting the error.
template <typename Body>
bool gst_mimi_try(GstElement* element, GQuark domain, gint code, const char* what, Body&& body);

void gst_mimi_post_exception(GstElement* element, GQuark domain, gint code, const char* what,
                             const char* detail, const char* file, const char* function, int line);

// audio/x-mimi caps of one model format and codebook count.
GstCaps* gst_mimi_caps_new(const kyutai::MimiFormat& format, int codebooks);

// Nanoseconds of `samples` at `rate`.
inline GstClockTime gst_mimi_samples_to_time(uint64_t samples, int rate) {
  return gst_util_uint64_scale_int(samples, GST_SECOND, rate);
}

template <typename Body>
bool gst_mimi_try(GstElement* element, GQuark domain, gint code, const char* what, Body&& body) {
  try {
    body();
    return true;
  } catch (const std::exception& e) {
    gst_mimi_post_exception(element, domain, code, what, e.what(), __FILE__, GST_FUNCTION,
                            __LINE__);
  } catch (...) {
    gst_mimi_post_exception(element, domain, code, what, "unknown exception", __FILE__,
                            GST_FUNCTION, __LINE__);
  }
  return false;
}
