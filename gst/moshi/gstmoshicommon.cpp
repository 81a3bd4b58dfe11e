#include "gstmoshicommon.h"

#include "kyutai/device.h"
#include "kyutai/error.h"
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
  return gst_kyutai_check_device(element, config.device, "Moshi");
}

std::shared_ptr<const kyutai::Moshi> gst_moshi_load_lm(GstElement* element,
                                                       const GstKyutaiConfig& config) {
  if (!check_settings(element, config)) return nullptr;
  try {
    const kyutai::MoshiFiles files = kyutai::locate_moshi(config.model);
    auto moshi = kyutai::Moshi::load_shared(files, config.device, config.dtype);
    kyutai::set_num_threads(config.threads);
    return moshi;
  } catch (const kyutai::NotFoundError& e) {
    GST_KYUTAI_POST_ERROR(element, RESOURCE, NOT_FOUND,
                          "Moshi model '" + config.model + "' not found.", e.what());
  } catch (const std::exception& e) {
    GST_KYUTAI_POST_ERROR(element, LIBRARY, INIT,
                          "Cannot load the Moshi model '" + config.model + "'.", e.what());
  }
  return nullptr;
}
