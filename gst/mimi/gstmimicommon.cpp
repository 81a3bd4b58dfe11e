#include "gstmimicommon.h"

#include "gstkyutaiload.h"
#include "gstkyutaiprogress.h"
#include "kyutai/hub.h"

void gst_mimi_install_settings(GObjectClass* klass) {
  gst_kyutai_install_settings(
      klass, PROP_MIMI_MODEL,
      "Mimi weights: a .safetensors file (a Mimi config.json beside it is used), a directory "
      "holding one, or a Hugging Face repository id such as kyutai/moshiko-pytorch-bf16, "
      "looked up in the local Hugging Face cache ($HF_HUB_CACHE, else $HF_HOME/hub, else "
      "~/.cache/huggingface/hub; snapshot of refs/main) and never downloaded. Loaded when "
      "the element goes from READY to PAUSED; elements using the same model share one copy",
      FALSE);
}

static bool locate(GstElement* element, const std::string& spec, kyutai::MimiFiles* files) {
  const auto sentence = [&](GstKyutaiErrorCode code) {
    return gst_kyutai_error_is_not_found(code) ? "Mimi model '" + spec + "' not found."
                              : "Cannot use Mimi model '" + spec + "'.";
  };
  return GST_KYUTAI_TRY(element, LIBRARY, INIT, sentence,
                        [&] { *files = kyutai::locate_mimi(spec); });
}

std::shared_ptr<const kyutai::Mimi> gst_mimi_load_model(GstElement* element,
                                                        const GstKyutaiConfig& config) {
  if (config.model.empty()) {
    GST_KYUTAI_POST_ERROR(element, RESOURCE, SETTINGS,
                          "No Mimi model given: set the 'model' property.", "");
    return nullptr;
  }
  if (!GST_KYUTAI_CHECK_DEVICE(element, config.device, "Mimi")) return nullptr;
  GstKyutaiLoadProgress progress(element, "Mimi", config.model);
  kyutai::MimiFiles files;
  if (!locate(element, config.model, &files)) return nullptr;
  auto mimi = gst_kyutai_load_mimi(element, files, config.device, progress);
  if (mimi && !gst_kyutai_set_threads(element, config.threads)) return nullptr;
  return mimi;
}

GstCaps* gst_mimi_caps_new(const kyutai::MimiFormat& format, int codebooks) {
  return gst_kyutai_mimi_caps_new(format.sample_rate, format.frame_size, codebooks,
                                  format.cardinality);
}
