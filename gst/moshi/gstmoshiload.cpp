#include "gstmoshiload.h"

#include "gstkyutaiprogress.h"
#include "gstmoshisettings.h"
#include "kyutai/error.h"
#include "kyutai/hub.h"
#include "kyutai/runtime.h"
#include "kyutai/weights.h"

// The quantized-weights cache reports to the element: a bad cache file is a warning on the bus
// (it is rebuilt), the file used or written goes to the log.
static kyutai::WeightCacheOptions weight_cache(GstElement* element) {
  kyutai::WeightCacheOptions cache;
  cache.warn = [element](const std::string& what) {
    GST_ELEMENT_WARNING(element, RESOURCE, READ, ("The quantized-weights cache was rebuilt."),
                        ("%s", what.c_str()));
  };
  cache.info = [element](const std::string& what) { GST_INFO_OBJECT(element, "%s", what.c_str()); };
  return cache;
}

std::shared_ptr<const kyutai::Moshi> gst_moshi_load_lm(GstElement* element,
                                                       const GstKyutaiConfig& config) {
  if (!gst_moshi_check_settings(element, config)) return nullptr;
  const auto sentence = [&](GstKyutaiErrorCode code) {
    if (gst_kyutai_error_is_not_found(code))
      return "Moshi model '" + config.model + "' not found.";
    return "Cannot load the Moshi model '" + config.model + "'.";
  };
  GstKyutaiLoadProgress progress(element, "Moshi", config.model);
  kyutai::MoshiFiles files;
  std::shared_ptr<const kyutai::Moshi> moshi;
  if (!GST_KYUTAI_TRY(element, LIBRARY, INIT, sentence, [&] {
        files = kyutai::locate_moshi(config.model);
        moshi = kyutai::Moshi::load_shared(files, config.device, config.weights,
                                           weight_cache(element), progress.callback());
      }))
    return nullptr;
  progress.complete(files.weights);
  GST_INFO_OBJECT(element, "%s weights (asked for %s) on device %s",
                  kyutai::weight_format_name(moshi->weight_format()),
                  kyutai::weight_format_name(config.weights), config.device.c_str());
  if (!GST_KYUTAI_TRY(element, RESOURCE, SETTINGS, "Cannot set the number of compute threads.",
                      [&] { kyutai::set_num_threads(config.threads); }))
    return nullptr;
  return moshi;
}
