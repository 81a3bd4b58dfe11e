#include "gstmimicommon.h"

#include <exception>

#include "kyutai/error.h"
#include "kyutai/hub.h"
#include "kyutai/runtime.h"

void gst_mimi_settings_init(GstMimiSettings* settings) {
  settings->model = g_strdup(GST_KYUTAI_DEFAULT_MODEL);
  settings->device = g_strdup(GST_KYUTAI_DEFAULT_DEVICE);
  settings->threads = GST_KYUTAI_DEFAULT_THREADS;
}

void gst_mimi_settings_clear(GstMimiSettings* settings) {
  g_clear_pointer(&settings->model, g_free);
  g_clear_pointer(&settings->device, g_free);
}

void gst_mimi_install_common_properties(GObjectClass* klass) {
  const auto flags = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                                              GST_PARAM_MUTABLE_READY);
  g_object_class_install_property(
      klass, PROP_MIMI_MODEL,
      g_param_spec_string(
          "model", "Model",
          "Mimi weights: a .safetensors file (a Mimi config.json beside it is used), a directory "
          "holding one, or a Hugging Face repository id such as kyutai/moshiko-pytorch-bf16, "
          "looked up in the local Hugging Face cache ($HF_HUB_CACHE, else $HF_HOME/hub, else "
          "~/.cache/huggingface/hub; snapshot of refs/main) and never downloaded. Loaded when "
          "the element goes from READY to PAUSED; elements using the same model share one copy",
          GST_KYUTAI_DEFAULT_MODEL, flags));
  g_object_class_install_property(klass, PROP_MIMI_DEVICE, gst_kyutai_param_spec_device());
  g_object_class_install_property(klass, PROP_MIMI_THREADS, gst_kyutai_param_spec_threads());
}

gboolean gst_mimi_settings_set_property(GstElement* element, GstMimiSettings* settings,
                                        guint prop_id, const GValue* value) {
  switch (prop_id) {
    case PROP_MIMI_MODEL:
      gst_kyutai_replace_string(element, &settings->model, value);
      return TRUE;
    case PROP_MIMI_DEVICE:
      gst_kyutai_replace_string(element, &settings->device, value);
      return TRUE;
    case PROP_MIMI_THREADS:
      GST_OBJECT_LOCK(element);
      settings->threads = g_value_get_int(value);
      GST_OBJECT_UNLOCK(element);
      return TRUE;
    default:
      return FALSE;
  }
}

gboolean gst_mimi_settings_get_property(GstElement* element, GstMimiSettings* settings,
                                        guint prop_id, GValue* value) {
  GST_OBJECT_LOCK(element);
  gboolean known = TRUE;
  switch (prop_id) {
    case PROP_MIMI_MODEL:
      g_value_set_string(value, settings->model);
      break;
    case PROP_MIMI_DEVICE:
      g_value_set_string(value, settings->device);
      break;
    case PROP_MIMI_THREADS:
      g_value_set_int(value, settings->threads);
      break;
    default:
      known = FALSE;
  }
  GST_OBJECT_UNLOCK(element);
  return known;
}

GstMimiConfig gst_mimi_settings_copy(GstElement* element, const GstMimiSettings* settings) {
  GstMimiConfig config;
  GST_OBJECT_LOCK(element);
  config.model = settings->model ? settings->model : "";
  config.device = settings->device ? settings->device : "";
  config.threads = settings->threads;
  GST_OBJECT_UNLOCK(element);
  return config;
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
                                                        const GstMimiConfig& config) {
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
  return gst_caps_new_simple(GST_KYUTAI_MIMI_MEDIA_TYPE, "rate", G_TYPE_INT, format.sample_rate,
                             "channels", G_TYPE_INT, 1, "frame-size", G_TYPE_INT, format.frame_size,
                             "codebooks", G_TYPE_INT, codebooks, "cardinality", G_TYPE_INT,
                             format.cardinality, nullptr);
}
