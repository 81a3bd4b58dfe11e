// Loading Moshi for an element of the moshi plugin, with the library's errors turned into
// element errors and its progress into PROGRESS messages.
// Torch-free: it includes only the library's public headers.
#pragma once

#include <gst/gst.h>

#include <memory>

#include "gstkyutai.h"
#include "kyutai/moshi.h"

// Finds and loads the LM and its tokenizer, or returns the copy this process already holds,
// posting PROGRESS messages (code "load-model") from START to COMPLETE, or ERROR, and logging
// (INFO) the weight format `auto` chose. On failure posts RESOURCE/SETTINGS (no model, bad
// device or weight format), RESOURCE/NOT_FOUND (model, weights or tokenizer missing) or
// LIBRARY/INIT (invalid checkpoint, config or tokenizer) and returns nullptr.
std::shared_ptr<const kyutai::Moshi> gst_moshi_load_lm(GstElement* element,
                                                       const GstKyutaiConfig& config);
