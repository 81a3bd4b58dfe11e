#include "gstkyutaiload.h"

#include "kyutai/error.h"
#include "kyutai/runtime.h"

kyutai::WeightCacheOptions gst_kyutai_weight_cache(GstElement* element) {
  kyutai::WeightCacheOptions cache;
  cache.warn = [element](const std::string& what) {
    GST_ELEMENT_WARNING(element, RESOURCE, READ, ("The quantized-weights cache was rebuilt."),
                        ("%s", what.c_str()));
  };
  cache.info = [element](const std::string& what) { GST_INFO_OBJECT(element, "%s", what.c_str()); };
  return cache;
}

bool gst_kyutai_check_lm_settings(GstElement* element, const GstKyutaiConfig& config,
                                  const char* what) {
  if (config.model.empty()) {
    GST_KYUTAI_POST_ERROR(element, RESOURCE, SETTINGS,
                          std::string("No ") + what + " model given: set the 'model' property.",
                          "");
    return false;
  }
  return GST_KYUTAI_CHECK_DEVICE(element, config.device, what) &&
         GST_KYUTAI_CHECK_WEIGHTS(element, config);
}

bool gst_kyutai_set_threads(GstElement* element, int threads) {
  return GST_KYUTAI_TRY(element, RESOURCE, SETTINGS, "Cannot set the number of compute threads.",
                        [&] { kyutai::set_num_threads(threads); });
}

std::shared_ptr<const kyutai::Mimi> gst_kyutai_load_mimi(GstElement* element,
                                                         const kyutai::MimiFiles& files,
                                                         const std::string& device,
                                                         GstKyutaiLoadProgress& progress) {
  const auto sentence = [&](GstKyutaiErrorCode code) {
    if (gst_kyutai_error_is_not_found(code))
      return "Mimi model file '" + files.weights + "' not found.";
    return "'" + files.weights + "' is not a valid Mimi model" +
           (files.config.empty() ? "" : " for " + files.config) + ".";
  };
  std::shared_ptr<const kyutai::Mimi> mimi;
  GST_KYUTAI_TRY(element, LIBRARY, INIT, sentence, [&] {
    mimi = kyutai::Mimi::load_shared(files.weights, files.config, device, progress.callback());
  });
  if (mimi) progress.complete(files.weights);
  return mimi;
}

void gst_kyutai_log_weights(GstElement* element, const GstKyutaiConfig& config,
                            kyutai::WeightFormat loaded) {
  GST_INFO_OBJECT(element, "%s weights (asked for %s) on device %s",
                  kyutai::weight_format_name(loaded), kyutai::weight_format_name(config.weights),
                  config.device.c_str());
}
