#include "gstmimicommon.h"

#include <exception>

#include "kyutai/error.h"
#include "kyutai/hub.h"
#include "kyutai/runtime.h"

void gst_mimi_settings_init(GstMimiSettings* settings) {
  settings->model = g_strdup(GST_MIMI_DEFAULT_MODEL);
  settings->device = g_strdup(GST_MIMI_DEFAULT_DEVICE);
  settings->threads = GST_MIMI_DEFAULT_THREADS;
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
          GST_MIMI_DEFAULT_MODEL, flags));
  g_object_class_install_property(
      klass, PROP_MIMI_DEVICE,
      g_param_spec_string("device", "Device",
                          "Where the model runs: cpu, or cuda / cuda:N with a CUDA build of "
                          "libtorch",
                          GST_MIMI_DEFAULT_DEVICE, flags));
  g_object_class_install_property(
      klass, PROP_MIMI_THREADS,
      g_param_spec_int("threads", "Threads",
                       "Compute threads, 0 for one per core. Process-wide: it applies to every "
                       "Mimi element of the process, and the element that started last wins",
                       0, 1024, GST_MIMI_DEFAULT_THREADS, flags));
}

static void replace_string(GstElement* element, gchar** field, const GValue* value) {
  GST_OBJECT_LOCK(element);
  g_free(*field);
  *field = g_value_dup_string(value);
  GST_OBJECT_UNLOCK(element);
}

gboolean gst_mimi_settings_set_property(GstElement* element, GstMimiSettings* settings,
                                        guint prop_id, const GValue* value) {
  switch (prop_id) {
    case PROP_MIMI_MODEL:
      replace_string(element, &settings->model, value);
      return TRUE;
    case PROP_MIMI_DEVICE:
      replace_string(element, &settings->device, value);
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

void gst_mimi_post_exception(GstElement* element, GQuark domain, gint code, const char* what,
                             const char* detail, const char* file, const char* function, int line) {
  gst_element_message_full(element, GST_MESSAGE_ERROR, domain, code, g_strdup(what),
                           g_strdup(detail), file, function, line);
}

#define POST_ERROR(element, domain, code, text, detail)                                     \
  gst_mimi_post_exception(element, GST_##domain##_ERROR, GST_##domain##_ERROR_##code, text, \
                          detail, __FILE__, GST_FUNCTION, __LINE__)

// A bad device name is a bad setting, not a bad model, so it is checked on its own.
static bool check_device(GstElement* element, const std::string& device) {
  try {
    kyutai::check_device(device);
    return true;
  } catch (const std::exception& e) {
    g_autofree gchar* text = g_strdup_printf("Cannot run Mimi on device '%s'.", device.c_str());
    POST_ERROR(element, RESOURCE, SETTINGS, text, e.what());
    return false;
  }
}

static bool locate(GstElement* element, const std::string& spec, kyutai::MimiFiles* files) {
  try {
    *files = kyutai::locate_mimi(spec);
    return true;
  } catch (const kyutai::NotFoundError& e) {
    g_autofree gchar* text = g_strdup_printf("Mimi model '%s' not found.", spec.c_str());
    POST_ERROR(element, RESOURCE, NOT_FOUND, text, e.what());
  } catch (const std::exception& e) {
    g_autofree gchar* text = g_strdup_printf("Cannot use Mimi model '%s'.", spec.c_str());
    POST_ERROR(element, LIBRARY, INIT, text, e.what());
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
    POST_ERROR(element, RESOURCE, NOT_FOUND, text, e.what());
  } catch (const std::exception& e) {
    g_autofree gchar* text =
        g_strdup_printf("'%s' is not a valid Mimi model%s%s.", files.weights.c_str(),
                        files.config.empty() ? "" : " for ", files.config.c_str());
    POST_ERROR(element, LIBRARY, INIT, text, e.what());
  } catch (...) {
    POST_ERROR(element, LIBRARY, INIT, "Cannot load the Mimi model.", "unknown exception");
  }
  return nullptr;
}

std::shared_ptr<const kyutai::Mimi> gst_mimi_load_model(GstElement* element,
                                                        const GstMimiConfig& config) {
  if (config.model.empty()) {
    POST_ERROR(element, RESOURCE, SETTINGS, "No Mimi model given: set the 'model' property.",
               nullptr);
    return nullptr;
  }
  kyutai::MimiFiles files;
  if (!check_device(element, config.device) || !locate(element, config.model, &files))
    return nullptr;
  auto mimi = load(element, files, config.device);
  if (mimi && !gst_mimi_try(element, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_SETTINGS,
                            "Cannot set the number of compute threads.",
                            [&] { kyutai::set_num_threads(config.threads); }))
    return nullptr;
  return mimi;
}

GstCaps* gst_mimi_caps_new(const kyutai::MimiFormat& format, int codebooks) {
  return gst_caps_new_simple(GST_MIMI_MEDIA_TYPE, "rate", G_TYPE_INT, format.sample_rate,
                             "channels", G_TYPE_INT, 1, "frame-size", G_TYPE_INT, format.frame_size,
                             "codebooks", G_TYPE_INT, codebooks, "cardinality", G_TYPE_INT,
                             format.cardinality, nullptr);
}
