// Loading the models for the elements of every plugin: the checks of the settings, Mimi from
// located files, and a language model (Moshi or STT) from the `model` property, with the
// library's errors turned into element errors and its progress into PROGRESS messages.
// Torch-free: it includes only the library's public headers.
#pragma once

#include <gst/gst.h>

#include <memory>
#include <string>

#include "gstkyutai.h"
#include "gstkyutaiprogress.h"
#include "kyutai/hub.h"
#include "kyutai/mimi.h"
#include "kyutai/weights.h"

// The quantized-weights cache reporting to `element`: a bad cache file is a warning on the bus
// (it is rebuilt), the file used or written goes to the log.
kyutai::WeightCacheOptions gst_kyutai_weight_cache(GstElement* element);

// Posts RESOURCE/SETTINGS and returns false when no model is given, or the device or weight
// format is wrong whatever the model (an unknown dtype; int8 and int4 off the CPU, too). `what`
// names the model for the user ("Moshi").
bool gst_kyutai_check_lm_settings(GstElement* element, const GstKyutaiConfig& config,
                                  const char* what);

// Applies the process-wide thread count, or posts RESOURCE/SETTINGS and returns false.
bool gst_kyutai_set_threads(GstElement* element, int threads);

// Loads Mimi from located files, or returns the copy this process already holds, reporting to
// `progress` (completed on success). On failure posts RESOURCE/NOT_FOUND or LIBRARY/INIT and
// returns nullptr.
std::shared_ptr<const kyutai::Mimi> gst_kyutai_load_mimi(GstElement* element,
                                                         const kyutai::MimiFiles& files,
                                                         const std::string& device,
                                                         GstKyutaiLoadProgress& progress);

// Logs the weight format `auto` chose for a loaded language model.
void gst_kyutai_log_weights(GstElement* element, const GstKyutaiConfig& config,
                            kyutai::WeightFormat loaded);

// Finds a language model as Kyutai's repositories lay it out (kyutai::locate_moshi) and loads
// it with `load(files, cache, progress)` (a library loader), posting PROGRESS messages (code
// "load-model") from START to COMPLETE, or ERROR. `files` (optional) receives where it was
// found. On failure posts RESOURCE/SETTINGS (no model, bad device or weight format),
// RESOURCE/NOT_FOUND (model, weights or tokenizer missing) or LIBRARY/INIT (invalid checkpoint,
// config or tokenizer) and returns nullptr.
template <typename Load>
auto gst_kyutai_load_lm(GstElement* element, const GstKyutaiConfig& config, const char* what,
                        Load&& load, kyutai::MoshiFiles* found = nullptr)
    -> decltype(load(std::declval<const kyutai::MoshiFiles&>(), kyutai::WeightCacheOptions{},
                     kyutai::LoadProgress{})) {
  if (!gst_kyutai_check_lm_settings(element, config, what)) return nullptr;
  const auto sentence = [&](GstKyutaiErrorCode code) {
    if (gst_kyutai_error_is_not_found(code))
      return std::string(what) + " model '" + config.model + "' not found.";
    return "Cannot load the " + std::string(what) + " model '" + config.model + "'.";
  };
  GstKyutaiLoadProgress progress(element, what, config.model);
  kyutai::MoshiFiles files;
  decltype(load(files, kyutai::WeightCacheOptions{}, kyutai::LoadProgress{})) model;
  if (!GST_KYUTAI_TRY(element, LIBRARY, INIT, sentence, [&] {
        files = kyutai::locate_moshi(config.model);
        model = load(files, gst_kyutai_weight_cache(element), progress.callback());
      }))
    return nullptr;
  progress.complete(files.weights);
  gst_kyutai_log_weights(element, config, model->weight_format());
  if (!gst_kyutai_set_threads(element, config.threads)) return nullptr;
  if (found) *found = std::move(files);
  return model;
}
