#include "gstkyutai.h"

#include <cinttypes>

#include "kyutai/device.h"
#include "kyutai/error.h"
#include "kyutai/weights.h"

static const GParamFlags kReadyFlags =
    static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);

void gst_kyutai_settings_init(GstKyutaiSettings* settings, gboolean has_dtype) {
  settings->model = g_strdup(GST_KYUTAI_DEFAULT_MODEL);
  settings->device = g_strdup(GST_KYUTAI_DEFAULT_DEVICE);
  settings->dtype = has_dtype ? g_strdup(GST_KYUTAI_DEFAULT_DTYPE) : nullptr;
  settings->threads = GST_KYUTAI_DEFAULT_THREADS;
  settings->has_dtype = has_dtype;
}

void gst_kyutai_settings_clear(GstKyutaiSettings* settings) {
  g_clear_pointer(&settings->model, g_free);
  g_clear_pointer(&settings->device, g_free);
  g_clear_pointer(&settings->dtype, g_free);
}

void gst_kyutai_install_settings(GObjectClass* klass, guint first, const char* model_blurb,
                                 gboolean has_dtype) {
  g_object_class_install_property(
      klass, first + GST_KYUTAI_PROP_MODEL,
      g_param_spec_string("model", "Model", model_blurb, GST_KYUTAI_DEFAULT_MODEL, kReadyFlags));
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
          "How the language model stores its matrix weights. bfloat16: as Kyutai ships them (the "
          "7B: 15.4 GB); float32: twice the memory, the reference's numerics; int8 and int4: "
          "quantized at load from the bfloat16 checkpoint and cached in ~/.cache/gst-moshi "
          "(the 7B: 8.6 and 4.9 GB resident), faster on a CPU (see docs/PERFORMANCE.md). "
          "int8 and int4 run on the CPU only",
          GST_TYPE_KYUTAI_WEIGHTS, GST_KYUTAI_WEIGHTS_BFLOAT16, kReadyFlags));
  g_object_class_install_property(
      klass, first + GST_KYUTAI_PROP_DTYPE,
      g_param_spec_string("dtype", "Data type (deprecated)",
                          "The weight format by name (float32, bfloat16, int8, int4): the same "
                          "setting as 'weights', kept for existing pipelines",
                          GST_KYUTAI_DEFAULT_DTYPE, kReadyFlags));
}

GType gst_kyutai_weights_get_type(void) {
  static const GEnumValue values[] = {
      {GST_KYUTAI_WEIGHTS_FLOAT32, "float32 (4 bytes a weight)", "float32"},
      {GST_KYUTAI_WEIGHTS_BFLOAT16, "bfloat16 (2 bytes a weight, as shipped)", "bfloat16"},
      {GST_KYUTAI_WEIGHTS_INT8, "int8 (Q8_0, 1.06 bytes a weight)", "int8"},
      {GST_KYUTAI_WEIGHTS_INT4, "int4 (Q4_0, 0.56 bytes a weight)", "int4"},
      {0, nullptr, nullptr}};
  static gsize type = 0;
  if (g_once_init_enter(&type))
    g_once_init_leave(&type, g_enum_register_static("GstKyutaiWeights", values));
  return type;
}

// The enum value of a format name as the library reads it (so its aliases too), or -1 for a
// name it refuses (dtype is free text).
static gint weights_value(const gchar* name) {
  if (!name) return -1;
  const char* nick;
  try {
    nick = kyutai::weight_format_name(kyutai::parse_weight_format(name));
  } catch (const kyutai::ConfigError&) {
    return -1;
  }
  g_autoptr(GEnumClass) klass = G_ENUM_CLASS(g_type_class_ref(GST_TYPE_KYUTAI_WEIGHTS));
  const GEnumValue* v = g_enum_get_value_by_nick(klass, nick);
  return v ? v->value : -1;
}

static const gchar* weights_name(gint value) {
  g_autoptr(GEnumClass) klass = G_ENUM_CLASS(g_type_class_ref(GST_TYPE_KYUTAI_WEIGHTS));
  const GEnumValue* v = g_enum_get_value(klass, value);
  return v ? v->value_nick : GST_KYUTAI_DEFAULT_DTYPE;
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
      replace_string(element, &settings->dtype, value);
      return TRUE;
    case GST_KYUTAI_PROP_WEIGHTS: {
      if (!settings->has_dtype) return FALSE;
      GstObjectLocker lock(element);
      g_free(settings->dtype);
      settings->dtype = g_strdup(weights_name(g_value_get_enum(value)));
      return TRUE;
    }
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
      if (known) g_value_set_string(value, settings->dtype);
      break;
    case GST_KYUTAI_PROP_WEIGHTS:
      known = settings->has_dtype;
      // A dtype no format has (refused at start) reads as the default.
      if (known) {
        const gint v = weights_value(settings->dtype);
        g_value_set_enum(value, v >= 0 ? v : GST_KYUTAI_WEIGHTS_BFLOAT16);
      }
      break;
    default:
      known = FALSE;
  }
  return known;
}

GstKyutaiConfig gst_kyutai_settings_copy(GstElement* element, const GstKyutaiSettings* settings) {
  GstKyutaiConfig config;
  GstObjectLocker lock(element);
  config.model = settings->model ? settings->model : "";
  config.device = settings->device ? settings->device : "";
  config.dtype = settings->dtype ? settings->dtype : "";
  config.threads = settings->threads;
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
