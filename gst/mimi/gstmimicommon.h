// Helpers shared by mimienc and mimidec: the model property, model loading with
// the library's errors turned into element errors, and the audio/x-mimi caps.
// Torch-free: it includes only the library's public headers.
#pragma once

#include <gst/gst.h>

#include <cstdint>
#include <memory>
#include <string>

#include "gstkyutai.h"
#include "kyutai/mimi.h"

// Property ids of the settings both elements have (model, device, threads); each element
// numbers its own from PROP_MIMI_LAST.
enum { PROP_MIMI_0, PROP_MIMI_MODEL, PROP_MIMI_LAST = PROP_MIMI_MODEL + GST_KYUTAI_N_PROPS };

// Installs model (documented for Mimi), device and threads.
void gst_mimi_install_settings(GObjectClass* klass);

// Applies the thread count, finds the model and loads it, or returns the copy this process
// already holds, posting PROGRESS messages (code "load-model") from START to COMPLETE, or ERROR
// when it is not found or invalid. On failure posts RESOURCE/SETTINGS (empty model, bad device), RESOURCE/NOT_FOUND
// (no such model) or LIBRARY/INIT (invalid checkpoint or configuration) and returns nullptr.
std::shared_ptr<const kyutai::Mimi> gst_mimi_load_model(GstElement* element,
                                                        const GstKyutaiConfig& config);

// audio/x-mimi caps of one model format and codebook count.
GstCaps* gst_mimi_caps_new(const kyutai::MimiFormat& format, int codebooks);

// Nanoseconds of `samples` at `rate`.
inline GstClockTime gst_mimi_samples_to_time(uint64_t samples, int rate) {
  return gst_util_uint64_scale_int(samples, GST_SECOND, rate);
}
