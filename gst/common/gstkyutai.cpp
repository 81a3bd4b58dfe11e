#include "gstkyutai.h"

#include <cinttypes>

#include "kyutai/device.h"
#include "kyutai/error.h"
#include "kyutai/weights.h"

static const GParamFlags kReadyFlags =
    static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);

void gst_kyutai_settings_init(GstKyutaiSettings* settings, gboolean has_dtype,
                              const char* default_model) {
  settings->model = g_strdup(default_model);
  settings->device = g_strdup(GST_KYUTAI_DEFAULT_DEVICE);
  settings->threads = GST_KYUTAI_DEFAULT_THREADS;
  settings->has_dtype = has_dtype;
  settings->weights = GST_KYUTAI_DEFAULT_WEIGHTS;
  settings->resolved = kyutai::WeightFormat::Auto;
  settings->refused_dtype = nullptr;
}

void gst_kyutai_settings_clear(GstKyutaiSettings* settings) {
  g_clear_pointer(&settings->model, g_free);
  g_clear_pointer(&settings->device, g_free);
  g_clear_pointer(&settings->refused_dtype, g_free);
}

// The blurb of `dtype`, with the names the library accepts (static: the property keeps it).
static const char* dtype_blurb() {
  static const std::string blurb =
      "The weight format by name (" + kyutai::weight_format_choices() +
      ", or an alias such as bf16): the same setting as 'weights', kept for existing pipelines. "
      "A name no format has stops the element at start";
  return blurb.c_str();
}

void gst_kyutai_install_settings(GObjectClass* klass, guint first, const char* model_blurb,
                                 gboolean has_dtype, const char* default_model) {
  g_object_class_install_property(
      klass, first + GST_KYUTAI_PROP_MODEL,
      g_param_spec_string("model", "Model", model_blurb, default_model, kReadyFlags));
  g_object_class_install_property(
      klass, first + GST_KYUTAI_PROP_DEVICE,
      g_param_spec_string("device", "Device",
                          "Where the model runs: cpu, or cuda / cuda:N with a CUDA build of "
                          "libtorch",
                          GST_KYUTAI_DEFAULT_DEVICE, kReadyFlags));
  g_object_class_install_property(
      klass, first + GST_KYUTAI_PROP_THREADS,
      g_param_spec_int("threads", "Threads",
                       "Compute threads, 0 for one per core. Process-wide: it applies to every "
                       "model of the process, and the element that started last wins",
                       0, 1024, GST_KYUTAI_DEFAULT_THREADS, kReadyFlags));
  if (!has_dtype) return;
  g_object_class_install_property(
      klass, first + GST_KYUTAI_PROP_WEIGHTS,
      g_param_spec_enum(
          "weights", "Weight format",
          "How the language model stores its matrix weights. auto (the default): bfloat16 on a "
          "GPU, int8 on a CPU; once the model is loaded this property reads back the format "
          "chosen. bfloat16: as Kyutai ships them (the 7B: 15.4 GB); float32: twice the "
          "memory, the reference's numerics; int8 and int4: quantized at load from the bfloat16 "
          "checkpoint and cached in ~/.cache/gst-moshi (the 7B: 8.6 and 4.9 GB resident), "
          "faster on a CPU (see docs/PERFORMANCE.md). int8 and int4 run on the CPU only",
          GST_TYPE_KYUTAI_WEIGHTS, static_cast<gint>(GST_KYUTAI_DEFAULT_WEIGHTS), kReadyFlags));
  g_object_class_install_property(
      klass, first + GST_KYUTAI_PROP_DTYPE,
      g_param_spec_string("dtype", "Data type (deprecated)", dtype_blurb(),
                          kyutai::weight_format_name(GST_KYUTAI_DEFAULT_WEIGHTS), kReadyFlags));
}

// "int8: Q8_0, quantized at load and cached; ... (1.0625 bytes a weight)". Built once and kept
// for the life of the type.
static const gchar* weights_value_name(const kyutai::WeightFormatTraits& t) {
  if (t.bytes_per_weight <= 0) return g_strdup_printf("%s: %s", t.name, t.description);
  return g_strdup_printf("%s: %s (%g bytes a weight)", t.name, t.description, t.bytes_per_weight);
}

GType gst_kyutai_weights_get_type(void) {
  static GEnumValue values[kyutai::kWeightFormatCount + 1] = {};
  static gsize type = 0;
  if (g_once_init_enter(&type)) {
    // Every plugin links its own copy of this code: the first one loaded registers the type,
    // the others use it (plugins are never unloaded).
    GType registered = g_type_from_name("GstKyutaiWeights");
    if (!registered) {
      for (int i = 0; i < kyutai::kWeightFormatCount; ++i) {
        const kyutai::WeightFormatTraits& t = kyutai::kWeightFormats[i];
        values[i] = {static_cast<gint>(t.format), weights_value_name(t), t.name};
      }
      registered = g_enum_register_static("GstKyutaiWeights", values);
    }
    g_once_init_leave(&type, registered);
  }
  return type;
}

// What `weights` and `dtype` read: the loaded model's format, else the setting.
static kyutai::WeightFormat effective_weights(const GstKyutaiSettings* settings) {
  return settings->resolved != kyutai::WeightFormat::Auto ? settings->resolved
                                                           : settings->weights;
}

// dtype is parsed here, once: a name no format has is kept to be refused at start (a property
// cannot fail), and leaves the format as it was.
static void set_dtype(GstElement* element, GstKyutaiSettings* settings, const gchar* name) {
  kyutai::WeightFormat format = GST_KYUTAI_DEFAULT_WEIGHTS;  // NULL: the default
  bool known = true;
  try {
    if (name) format = kyutai::parse_weight_format(name);
  } catch (const kyutai::ConfigError&) {
    known = false;
  }
  GstObjectLocker lock(element);
  if (known) settings->weights = format;
  g_free(settings->refused_dtype);
  settings->refused_dtype = known ? nullptr : g_strdup(name);
}

static void set_weights(GstElement* element, GstKyutaiSettings* settings, gint value) {
  GstObjectLocker lock(element);
  settings->weights = static_cast<kyutai::WeightFormat>(value);
  g_clear_pointer(&settings->refused_dtype, g_free);
}

static void replace_string(GstElement* element, gchar** field, const GValue* value) {
  GstObjectLocker lock(element);
  g_free(*field);
  *field = g_value_dup_string(value);
}

gboolean gst_kyutai_settings_set_property(GstElement* element, GstKyutaiSettings* settings,
                                          guint offset, const GValue* value) {
  switch (offset) {
    case GST_KYUTAI_PROP_MODEL:
      replace_string(element, &settings->model, value);
      return TRUE;
    case GST_KYUTAI_PROP_DEVICE:
      replace_string(element, &settings->device, value);
      return TRUE;
    case GST_KYUTAI_PROP_THREADS: {
      GstObjectLocker lock(element);
      settings->threads = g_value_get_int(value);
      return TRUE;
    }
    case GST_KYUTAI_PROP_DTYPE:
      if (!settings->has_dtype) return FALSE;
      set_dtype(element, settings, g_value_get_string(value));
      return TRUE;
    case GST_KYUTAI_PROP_WEIGHTS:
      if (!settings->has_dtype) return FALSE;
      set_weights(element, settings, g_value_get_enum(value));
      return TRUE;
    default:
      return FALSE;
  }
}

gboolean gst_kyutai_settings_get_property(GstElement* element, GstKyutaiSettings* settings,
                                          guint offset, GValue* value) {
  gboolean known = TRUE;
  GstObjectLocker lock(element);
  switch (offset) {
    case GST_KYUTAI_PROP_MODEL:
      g_value_set_string(value, settings->model);
      break;
    case GST_KYUTAI_PROP_DEVICE:
      g_value_set_string(value, settings->device);
      break;
    case GST_KYUTAI_PROP_THREADS:
      g_value_set_int(value, settings->threads);
      break;
    case GST_KYUTAI_PROP_DTYPE:
      known = settings->has_dtype;
      if (known)
        g_value_set_string(value, settings->refused_dtype
                                      ? settings->refused_dtype
                                      : kyutai::weight_format_name(effective_weights(settings)));
      break;
    case GST_KYUTAI_PROP_WEIGHTS:
      known = settings->has_dtype;
      if (known) g_value_set_enum(value, static_cast<gint>(effective_weights(settings)));
      break;
    default:
      known = FALSE;
  }
  return known;
}

void gst_kyutai_settings_set_resolved(GstElement* element, GstKyutaiSettings* settings,
                                      kyutai::WeightFormat format) {
  GstObjectLocker lock(element);
  settings->resolved = format;
}

GstKyutaiConfig gst_kyutai_settings_copy(GstElement* element, const GstKyutaiSettings* settings) {
  GstKyutaiConfig config;
  GstObjectLocker lock(element);
  config.model = settings->model ? settings->model : "";
  config.device = settings->device ? settings->device : "";
  config.threads = settings->threads;
  config.weights = settings->weights;
  config.refused_dtype = settings->refused_dtype ? settings->refused_dtype : "";
  return config;
}

bool gst_kyutai_error_code_is(GstKyutaiErrorCode a, GstKyutaiErrorCode b) {
  return a.domain == b.domain && a.code == b.code;
}

GstKyutaiErrorCode gst_kyutai_error_code(const std::exception_ptr& error,
                                         GstKyutaiErrorCode fallback) {
  const GstKyutaiErrorCode settings = GST_KYUTAI_ERROR_CODE(RESOURCE, SETTINGS);
  try {
    std::rethrow_exception(error);
  } catch (const kyutai::NotFoundError&) {
    return GST_KYUTAI_ERROR_CODE(RESOURCE, NOT_FOUND);
  } catch (const kyutai::FormatError&) {
    return GST_KYUTAI_ERROR_CODE(LIBRARY, INIT);
  } catch (const kyutai::CheckpointError&) {
    return GST_KYUTAI_ERROR_CODE(LIBRARY, INIT);
  } catch (const kyutai::ConfigError&) {
    return gst_kyutai_error_code_is(fallback, settings) ? settings
                                                        : GST_KYUTAI_ERROR_CODE(LIBRARY, INIT);
  } catch (...) {
    return fallback;  // InputError and anything unexpected: what the call site does
  }
}

std::string gst_kyutai_error_detail(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown exception";
  }
}

void gst_kyutai_post_error(GstElement* element, GstKyutaiErrorCode code, const std::string& text,
                           const std::string& detail, const GstKyutaiSite& site) {
  gst_element_message_full(
      element, GST_MESSAGE_ERROR, code.domain, code.code, g_strdup(text.c_str()),
      detail.empty() ? nullptr : g_strdup(detail.c_str()), site.file, site.function, site.line);
}

bool gst_kyutai_check_device(GstElement* element, const std::string& device, const char* what,
                             const GstKyutaiSite& site) {
  return gst_kyutai_try(site, element, GST_KYUTAI_ERROR_CODE(RESOURCE, SETTINGS),
                        std::string("Cannot run ") + what + " on device '" + device + "'.",
                        [&] { kyutai::check_device(device); });
}

// "float32, bfloat16 or auto": the choices that run on any device.
static std::string formats_off_the_cpu() {
  std::string out;
  for (const kyutai::WeightFormatTraits& t : kyutai::kWeightFormats)
    if (!t.cpu_only) out += std::string(out.empty() ? "" : ", ") + t.name;
  const size_t last = out.rfind(", ");
  return last == std::string::npos ? out : out.replace(last, 2, " or ");
}

bool gst_kyutai_check_weights(GstElement* element, const GstKyutaiConfig& config,
                              const GstKyutaiSite& site) {
  if (!config.refused_dtype.empty()) {
    gst_kyutai_post_error(element, GST_KYUTAI_ERROR_CODE(RESOURCE, SETTINGS),
                          "The weight format (weights, dtype) must be " +
                              kyutai::weight_format_choices() + ", not '" + config.refused_dtype +
                              "'.",
                          "", site);
    return false;
  }
  // The library refuses this too, at load, where it would read as a model that cannot load.
  const kyutai::WeightFormat format = kyutai::resolve_weight_format(config.weights, config.device);
  if (!kyutai::weight_format_traits(format).cpu_only || config.device == "cpu") return true;
  gst_kyutai_post_error(element, GST_KYUTAI_ERROR_CODE(RESOURCE, SETTINGS),
                        std::string(kyutai::weight_format_name(format)) +
                            " weights run on the CPU only: use " + formats_off_the_cpu() +
                            " on device '" + config.device + "'.",
                        "", site);
  return false;
}

GstCaps* gst_kyutai_mimi_caps_new(int rate, int frame_size, int codebooks, int cardinality) {
  return gst_caps_new_simple(GST_KYUTAI_MIMI_MEDIA_TYPE, "rate", G_TYPE_INT, rate, "channels",
                             G_TYPE_INT, 1, "frame-size", G_TYPE_INT, frame_size, "codebooks",
                             G_TYPE_INT, codebooks, "cardinality", G_TYPE_INT, cardinality,
                             nullptr);
}

GstBuffer* gst_kyutai_mimi_pack(const int64_t* codes, size_t count) {
  GstBuffer* buffer = gst_buffer_new_allocate(nullptr, count * GST_KYUTAI_MIMI_CODE_BYTES, nullptr);
  GstMapInfo map;
  gst_buffer_map(buffer, &map, GST_MAP_WRITE);
  for (size_t k = 0; k < count; ++k)
    GST_WRITE_UINT16_LE(map.data + GST_KYUTAI_MIMI_CODE_BYTES * k, static_cast<guint16>(codes[k]));
  gst_buffer_unmap(buffer, &map);
  return buffer;
}

static std::string read_codes(const GstMapInfo& map, size_t count, int cardinality,
                              int64_t* codes) {
  for (size_t k = 0; k < count; ++k) {
    codes[k] = GST_READ_UINT16_LE(map.data + GST_KYUTAI_MIMI_CODE_BYTES * k);
    if (cardinality > 0 && codes[k] >= cardinality) {
      g_autofree gchar* why = g_strdup_printf(
          "Invalid Mimi code %" PRId64 " in codebook %zu: codes must be below the cardinality, %d.",
          codes[k], k, cardinality);
      return why;
    }
  }
  return {};
}

std::string gst_kyutai_mimi_unpack(GstBuffer* buffer, size_t count, int cardinality, int64_t* codes,
                                   const char* size_hint) {
  GstMapInfo map;
  if (!gst_buffer_map(buffer, &map, GST_MAP_READ)) return "Cannot read a Mimi frame.";
  std::string why;
  const gsize expected = count * GST_KYUTAI_MIMI_CODE_BYTES;
  if (map.size != expected) {
    g_autofree gchar* text =
        g_strdup_printf("A Mimi frame of %zu codebooks is %zu bytes, but this buffer has %zu%s.",
                        count, expected, map.size, size_hint);
    why = text;
  } else {
    why = read_codes(map, count, cardinality, codes);
  }
  gst_buffer_unmap(buffer, &map);
  return why;
}
