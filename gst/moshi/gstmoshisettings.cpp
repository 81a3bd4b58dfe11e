#include "gstmoshisettings.h"

#include "kyutai/weights.h"

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
bool gst_moshi_check_settings(GstElement* element, const GstKyutaiConfig& config) {
  if (config.model.empty()) {
    GST_KYUTAI_POST_ERROR(element, RESOURCE, SETTINGS,
                          "No Moshi model given: set the 'model' property.", "");
    return false;
  }
  kyutai::WeightFormat format{};
  if (!GST_KYUTAI_TRY(
          element, RESOURCE, SETTINGS,
          "The weight format (weights, dtype) must be float32, bfloat16, int8 or int4, not '" +
              config.dtype + "'.",
          [&] { format = kyutai::parse_weight_format(config.dtype); }))
    return false;
  if (!GST_KYUTAI_CHECK_DEVICE(element, config.device, "Moshi")) return false;
  // The library refuses this too, at load, where it would read as a model that cannot load.
  if ((format == kyutai::WeightFormat::Int8 || format == kyutai::WeightFormat::Int4) &&
      config.device != "cpu") {
    GST_KYUTAI_POST_ERROR(element, RESOURCE, SETTINGS,
                          "int8 and int4 weights run on the CPU only: use float32 or bfloat16 "
                          "on device '" + config.device + "'.",
                          "");
    return false;
  }
  return true;
}
