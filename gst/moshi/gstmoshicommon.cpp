#include "gstmoshicommon.h"

#include "kyutai/codec.h"
#include "kyutai/error.h"
#include "kyutai/hub.h"
#include "kyutai/runtime.h"

void gst_moshi_settings_init(GstMoshiSettings* settings) {
  settings->model = g_strdup(GST_KYUTAI_DEFAULT_MODEL);
  settings->device = g_strdup(GST_KYUTAI_DEFAULT_DEVICE);
  settings->dtype = g_strdup(GST_MOSHI_DEFAULT_DTYPE);
  settings->threads = GST_KYUTAI_DEFAULT_THREADS;
}

void gst_moshi_settings_clear(GstMoshiSettings* settings) {
  g_clear_pointer(&settings->model, g_free);
  g_clear_pointer(&settings->device, g_free);
  g_clear_pointer(&settings->dtype, g_free);
}

void gst_moshi_install_settings_properties(GObjectClass* klass, guint first) {
  const auto flags = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                                              GST_PARAM_MUTABLE_READY);
  g_object_class_install_property(
      klass, first + GST_MOSHI_PROP_MODEL,
      g_param_spec_string(
          "model", "Model",
          "Moshi as Kyutai's repositories lay it out: a directory (config.json naming the "
          "weights, tokenizer and Mimi; without config.json the Moshi 7B defaults and file "
          "names), its config.json, or a Hugging Face repository id such as "
          "kyutai/moshiko-pytorch-bf16, looked up in the local Hugging Face cache "
          "($HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub; snapshot of "
          "refs/main) and never downloaded. Loaded when going from READY to PAUSED; elements "
          "using the same model, device and dtype share one copy",
          GST_KYUTAI_DEFAULT_MODEL, flags));
  g_object_class_install_property(klass, first + GST_MOSHI_PROP_DEVICE,
                                  gst_kyutai_param_spec_device());
  g_object_class_install_property(
      klass, first + GST_MOSHI_PROP_DTYPE,
      g_param_spec_string("dtype", "Data type",
                          "Precision the language model runs in: bfloat16 (as Kyutai ships the "
                          "weights; the 7B needs 15.4 GB) or float32 (twice the memory; the "
                          "reference's numerics)",
                          GST_MOSHI_DEFAULT_DTYPE, flags));
  g_object_class_install_property(klass, first + GST_MOSHI_PROP_THREADS,
                                  gst_kyutai_param_spec_threads());
}

gboolean gst_moshi_settings_set_property(GstElement* element, GstMoshiSettings* settings,
                                         guint offset, const GValue* value) {
  switch (offset) {
    case GST_MOSHI_PROP_MODEL:
      gst_kyutai_replace_string(element, &settings->model, value);
      return TRUE;
    case GST_MOSHI_PROP_DEVICE:
      gst_kyutai_replace_string(element, &settings->device, value);
      return TRUE;
    case GST_MOSHI_PROP_DTYPE:
      gst_kyutai_replace_string(element, &settings->dtype, value);
      return TRUE;
    case GST_MOSHI_PROP_THREADS:
      GST_OBJECT_LOCK(element);
      settings->threads = g_value_get_int(value);
      GST_OBJECT_UNLOCK(element);
      return TRUE;
    default:
      return FALSE;
  }
}

gboolean gst_moshi_settings_get_property(GstElement* element, GstMoshiSettings* settings,
                                         guint offset, GValue* value) {
  gboolean known = TRUE;
  GST_OBJECT_LOCK(element);
  switch (offset) {
    case GST_MOSHI_PROP_MODEL:
      g_value_set_string(value, settings->model);
      break;
    case GST_MOSHI_PROP_DEVICE:
      g_value_set_string(value, settings->device);
      break;
    case GST_MOSHI_PROP_DTYPE:
      g_value_set_string(value, settings->dtype);
      break;
    case GST_MOSHI_PROP_THREADS:
      g_value_set_int(value, settings->threads);
      break;
    default:
      known = FALSE;
  }
  GST_OBJECT_UNLOCK(element);
  return known;
}

GstMoshiConfig gst_moshi_settings_copy(GstElement* element, const GstMoshiSettings* settings) {
  GstMoshiConfig config;
  GST_OBJECT_LOCK(element);
  config.model = settings->model ? settings->model : "";
  config.device = settings->device ? settings->device : "";
  config.dtype = settings->dtype ? settings->dtype : "";
  config.threads = settings->threads;
  GST_OBJECT_UNLOCK(element);
  return config;
}

// Settings that are wrong whatever the model: device and dtype.
static bool check_settings(GstElement* element, const GstMoshiConfig& config) {
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
                                                       const GstMoshiConfig& config) {
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
