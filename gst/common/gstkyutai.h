// What the mimi and moshi plugins share: the audio/x-mimi template, defaults of the settings both
// have, and turning the library's exceptions into element errors. Torch-free: only the
// library's public headers.
#pragma once

#include <gst/gst.h>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>

#define GST_KYUTAI_MIMI_MEDIA_TYPE "audio/x-mimi"
// The widest codebook range the media type allows (the released Mimi has 32).
#define GST_KYUTAI_MIMI_MAX_CODEBOOKS 32
#define GST_KYUTAI_MIMI_TEMPLATE_CAPS                                   \
  GST_KYUTAI_MIMI_MEDIA_TYPE                                            \
  ", rate = (int) [ 1, MAX ], channels = (int) 1, "                     \
  "frame-size = (int) [ 1, MAX ], codebooks = (int) [ 1, " G_STRINGIFY( \
      GST_KYUTAI_MIMI_MAX_CODEBOOKS) " ], cardinality = (int) [ 1, 65536 ]"

// The audio/x-mimi wire format (docs/MEDIA-TYPE.md): one frame per buffer, its codes as
// little-endian guint16 in codebook order, so a frame of `count` codes is 2 x count bytes.
#define GST_KYUTAI_MIMI_CODE_BYTES 2
// Fixed audio/x-mimi caps of one format (framed, the default).
GstCaps* gst_kyutai_mimi_caps_new(int rate, int frame_size, int codebooks, int cardinality);
GstBuffer* gst_kyutai_mimi_pack(const int64_t* codes, size_t count);
// Reads one frame of `count` codes into `codes`. Returns an empty string, or the sentence of a
// STREAM/DECODE error: a buffer of another size (`size_hint` is added to that sentence), or a
// code at or above `cardinality` (not checked when `cardinality` is 0).
std::string gst_kyutai_mimi_unpack(GstBuffer* buffer, size_t count, int cardinality, int64_t* codes,
                                   const char* size_hint = "");

#define GST_KYUTAI_DEFAULT_MODEL "kyutai/moshiko-pytorch-bf16"
#define GST_KYUTAI_DEFAULT_DEVICE "cpu"
#define GST_KYUTAI_DEFAULT_THREADS 0
#define GST_KYUTAI_DEFAULT_DTYPE "bfloat16"

// The model settings every element has, as plain C data inside the GObject instance, under its
// object lock. dtype is used only by elements that install it (the language model's).
struct GstKyutaiSettings {
  gchar* model;
  gchar* device;
  gchar* dtype;
  gint threads;
  gboolean has_dtype;
};

// Offsets of the settings' properties from the first id an element gives them; an element
// numbers its own properties from first + GST_KYUTAI_N_PROPS.
enum {
  GST_KYUTAI_PROP_MODEL,
  GST_KYUTAI_PROP_DEVICE,
  GST_KYUTAI_PROP_THREADS,
  GST_KYUTAI_PROP_DTYPE,
  GST_KYUTAI_N_PROPS
};

void gst_kyutai_settings_init(GstKyutaiSettings* settings, gboolean has_dtype);
void gst_kyutai_settings_clear(GstKyutaiSettings* settings);
// Installs model (documented by `model_blurb`), device, threads, and dtype when `has_dtype`.
void gst_kyutai_install_settings(GObjectClass* klass, guint first, const char* model_blurb,
                                 gboolean has_dtype);
// `offset` is the property id minus the first one; FALSE when it is not a setting.
gboolean gst_kyutai_settings_set_property(GstElement* element, GstKyutaiSettings* settings,
                                          guint offset, const GValue* value);
gboolean gst_kyutai_settings_get_property(GstElement* element, GstKyutaiSettings* settings,
                                          guint offset, GValue* value);

// The settings copied at start, so that streaming never reads properties.
struct GstKyutaiConfig {
  std::string model, device, dtype;
  int threads = GST_KYUTAI_DEFAULT_THREADS;
};
GstKyutaiConfig gst_kyutai_settings_copy(GstElement* element, const GstKyutaiSettings* settings);

// Posts an element error with a sentence for the user and the technical detail.
void gst_kyutai_post_error(GstElement* element, GQuark domain, gint code, const std::string& text,
                           const std::string& detail, const char* file, const char* function,
                           int line);

#define GST_KYUTAI_POST_ERROR(element, domain, code, text, detail)                                \
  gst_kyutai_post_error(element, GST_##domain##_ERROR, GST_##domain##_ERROR_##code, text, detail, \
                        __FILE__, GST_FUNCTION, __LINE__)

// Checks a device name; a bad one is RESOURCE/SETTINGS ("Cannot run `what` on device ...").
bool gst_kyutai_check_device(GstElement* element, const std::string& device, const char* what);

// Runs `body`; an exception becomes an element error of `domain`/`code` with `what` as the
// sentence for the user. Returns false after posting.
template <typename Body>
bool gst_kyutai_try(GstElement* element, GQuark domain, gint code, const char* what, Body&& body) {
  try {
    body();
    return true;
  } catch (const std::exception& e) {
    gst_kyutai_post_error(element, domain, code, what, e.what(), __FILE__, GST_FUNCTION, __LINE__);
  } catch (...) {
    gst_kyutai_post_error(element, domain, code, what, "unknown exception", __FILE__, GST_FUNCTION,
                          __LINE__);
  }
  return false;
}
