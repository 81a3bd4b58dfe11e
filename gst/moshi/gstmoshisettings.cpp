#include "gstmoshisettings.h"

#include "gstkyutaiload.h"
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
      "using the same model, device and weight format share one copy",
      TRUE);
}

bool gst_moshi_check_settings(GstElement* element, const GstKyutaiConfig& config) {
  return gst_kyutai_check_lm_settings(element, config, "Moshi");
}
