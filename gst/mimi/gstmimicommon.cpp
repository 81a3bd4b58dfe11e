#include "gstmimicommon.h"

#include <exception>

#include "kyutai/error.h"
#include "kyutai/hub.h"
#include "kyutai/runtime.h"

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
  try {
    *files = kyutai::locate_mimi(spec);
    return true;
  } catch (const kyutai::NotFoundError& e) {
    g_autofree gchar* text = g_strdup_printf("Mimi model '%s' not found.", spec.c_str());
    GST_KYUTAI_POST_ERROR(element, RESOURCE, NOT_FOUND, text, e.what());
  } catch (const std::exception& e) {
    g_autofree gchar* text = g_strdup_printf("Cannot use Mimi model '%s'.", spec.c_str());
    GST_KYUTAI_POST_ERROR(element, LIBRARY, INIT, text, e.what());
  }
  return false;
}

static std::shared_ptr<const kyutai::Mimi> load(GstElement* element, const kyutai::MimiFiles& files,
                                                const std::string& device) {
  try {
    return kyutai::Mimi::load_shared(files.weights, files.config, device);
  } catch (const kyutai::NotFoundError& e) {
    g_autofree gchar* text =
        g_strdup_printf("Mimi model file '%s' not found.", files.weights.c_str());
    GST_KYUTAI_POST_ERROR(element, RESOURCE, NOT_FOUND, text, e.what());
  } catch (const std::exception& e) {
    g_autofree gchar* text =
        g_strdup_printf("'%s' is not a valid Mimi model%s%s.", files.weights.c_str(),
                        files.config.empty() ? "" : " for ", files.config.c_str());
    GST_KYUTAI_POST_ERROR(element, LIBRARY, INIT, text, e.what());
  } catch (...) {
    GST_KYUTAI_POST_ERROR(element, LIBRARY, INIT, "Cannot load the Mimi model.",
                          "unknown exception");
  }
  return nullptr;
}

std::shared_ptr<const kyutai::Mimi> gst_mimi_load_model(GstElement* element,
                                                        const GstKyutaiConfig& config) {
  if (config.model.empty()) {
    GST_KYUTAI_POST_ERROR(element, RESOURCE, SETTINGS,
                          "No Mimi model given: set the 'model' property.", "");
    return nullptr;
  }
  kyutai::MimiFiles files;
  if (!gst_kyutai_check_device(element, config.device, "Mimi") ||
      !locate(element, config.model, &files))
    return nullptr;
  auto mimi = load(element, files, config.device);
  if (mimi && !gst_kyutai_try(element, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_SETTINGS,
                              "Cannot set the number of compute threads.",
                              [&] { kyutai::set_num_threads(config.threads); }))
    return nullptr;
  return mimi;
}

GstCaps* gst_mimi_caps_new(const kyutai::MimiFormat& format, int codebooks) {
  return gst_kyutai_mimi_caps_new(format.sample_rate, format.frame_size, codebooks,
                                  format.cardinality);
}
