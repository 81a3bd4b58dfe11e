#include "gstmoshicommon.h"

#include "kyutai/hub.h"
#include "kyutai/runtime.h"

void gst_moshi_install_settings(GObjectClass* klass, guint first) {
  gst_kyutai_install_settings(
      klass, first,
      "Moshi as Kyutai's repositories lay it out: a directory (config.json naming the "
      "weights, tokenizer and Mimi; without config.json the Moshi 7B defaults and file "
      "names), its config.json, or a Hugging Face repository id such as "
      "kyutai/moshiko-pytorch-bf16, looked up in the local Hugging Face cache "
      "($HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub; snapshot of "
      "refs/main) and never downloaded. Loaded when going from READY to PAUSED; elements "
      "using the same model, device and dtype share one copy",
      TRUE);
}

// Settings that are wrong whatever the model: device and dtype.
static bool check_settings(GstElement* element, const GstKyutaiConfig& config) {
  if (config.model.empty()) {
    GST_KYUTAI_POST_ERROR(element, RESOURCE, SETTINGS,
                          "No Moshi model given: set the 'model' property.", "");
    return false;
  }
  if (config.dtype != "float32" && config.dtype != "bfloat16") {
    GST_KYUTAI_POST_ERROR(element, RESOURCE, SETTINGS,
                          "dtype must be float32 or bfloat16, not '" + config.dtype + "'.", "");
    return false;
  }
  return GST_KYUTAI_CHECK_DEVICE(element, config.device, "Moshi");
}

std::shared_ptr<const kyutai::Moshi> gst_moshi_load_lm(GstElement* element,
                                                       const GstKyutaiConfig& config) {
  if (!check_settings(element, config)) return nullptr;
  const auto sentence = [&](GstKyutaiErrorCode code) {
    if (gst_kyutai_error_code_is(code, GST_KYUTAI_ERROR_CODE(RESOURCE, NOT_FOUND)))
      return "Moshi model '" + config.model + "' not found.";
    return "Cannot load the Moshi model '" + config.model + "'.";
  };
  std::shared_ptr<const kyutai::Moshi> moshi;
  if (!GST_KYUTAI_TRY(element, LIBRARY, INIT, sentence, [&] {
        moshi = kyutai::Moshi::load_shared(kyutai::locate_moshi(config.model), config.device,
                                           config.dtype);
      }))
    return nullptr;
  if (!GST_KYUTAI_TRY(element, RESOURCE, SETTINGS, "Cannot set the number of compute threads.",
                      [&] { kyutai::set_num_threads(config.threads); }))
    return nullptr;
  return moshi;
}
