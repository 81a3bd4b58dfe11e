// Helpers of the moshi plugin: the model settings moshilm and moshibin share, and loading Moshi
// with the library's errors turned into element errors.
// Torch-free: it includes only the library's public headers.
#pragma once

#include <gst/gst.h>

#include <memory>
#include <string>

#include "gstkyutai.h"
#include "kyutai/moshi.h"

// Installs model (documented for Moshi's repositories), device, threads and dtype from `first`.
void gst_moshi_install_settings(GObjectClass* klass, guint first);

// Finds and loads the LM and its tokenizer, or returns the copy this process already holds. On
// failure posts RESOURCE/SETTINGS (no model, bad device or dtype), RESOURCE/NOT_FOUND (model,
// weights or tokenizer missing) or LIBRARY/INIT (invalid checkpoint, config or tokenizer) and
// returns nullptr.
std::shared_ptr<const kyutai::Moshi> gst_moshi_load_lm(GstElement* element,
                                                       const GstKyutaiConfig& config);
