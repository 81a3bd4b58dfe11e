// What the mimi and moshi plugins share: the audio/x-mimi template, defaults of the settings both
// have, and turning the library's exceptions into element errors. Torch-free: only the
// library's public headers.
#pragma once

#include <gst/gst.h>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>
#include <type_traits>

#include "kyutai/weights.h"

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

// Holds a GstObject's lock for its lifetime, as libcamera's element holds its mutexes.
class GstObjectLocker {
 public:
  explicit GstObjectLocker(gpointer object) : object_(GST_OBJECT(object)) {
    GST_OBJECT_LOCK(object_);
  }
  ~GstObjectLocker() { GST_OBJECT_UNLOCK(object_); }
  GstObjectLocker(const GstObjectLocker&) = delete;
  GstObjectLocker& operator=(const GstObjectLocker&) = delete;

 private:
  GstObject* object_;
};

// What `read` returns, read under the object's lock: a copy of fields that other threads set.
template <typename Read>
auto gst_kyutai_locked(gpointer object, Read&& read) {
  GstObjectLocker lock(object);
  return read();
}

// A GAP up to this long is filled with silence, frame by frame; a longer one is a
// discontinuity: the stream restarts after it and the GAP goes downstream. So a GAP costs
// bounded memory and time whatever its duration (docs/ELEMENTS.md).
#define GST_KYUTAI_MAX_GAP_FILL (5 * GST_SECOND)

#define GST_KYUTAI_DEFAULT_MODEL "kyutai/moshiko-pytorch-bf16"
#define GST_KYUTAI_DEFAULT_STT_MODEL "kyutai/stt-1b-en_fr"
#define GST_KYUTAI_DEFAULT_DEVICE "cpu"
#define GST_KYUTAI_DEFAULT_THREADS 0
#define GST_KYUTAI_DEFAULT_WEIGHTS kyutai::WeightFormat::Auto

// The model settings every element has, as plain C data inside the GObject instance, under its
// object lock. The weight format is used only by elements that install it (the language
// model's), as `weights` (the enum) and `dtype` (its deprecated string spelling, parsed once,
// when set).
struct GstKyutaiSettings {
  gchar* model;
  gchar* device;
  gint threads;
  gboolean has_dtype;
  kyutai::WeightFormat weights;   // as set: Auto by default
  kyutai::WeightFormat resolved;  // what the loaded model uses; Auto while none is loaded
  gchar* refused_dtype;           // a dtype no format has: the element refuses to start
};

// Offsets of the settings' properties from the first id an element gives them; an element
// numbers its own properties from first + GST_KYUTAI_N_PROPS.
enum {
  GST_KYUTAI_PROP_MODEL,
  GST_KYUTAI_PROP_DEVICE,
  GST_KYUTAI_PROP_THREADS,
  GST_KYUTAI_PROP_DTYPE,
  GST_KYUTAI_PROP_WEIGHTS,
  GST_KYUTAI_N_PROPS
};

// How the language model stores its matrix weights (the `weights` property): one value per row
// of the library's table (kyutai/weights.h), whose number is the kyutai::WeightFormat, whose
// nick is the format's name and whose name its description.
GType gst_kyutai_weights_get_type(void);
#define GST_TYPE_KYUTAI_WEIGHTS (gst_kyutai_weights_get_type())

void gst_kyutai_settings_init(GstKyutaiSettings* settings, gboolean has_dtype,
                              const char* default_model = GST_KYUTAI_DEFAULT_MODEL);
void gst_kyutai_settings_clear(GstKyutaiSettings* settings);
// Installs model (documented by `model_blurb`), device, threads, and dtype when `has_dtype`.
void gst_kyutai_install_settings(GObjectClass* klass, guint first, const char* model_blurb,
                                 gboolean has_dtype,
                                 const char* default_model = GST_KYUTAI_DEFAULT_MODEL);
// `offset` is the property id minus the first one; FALSE when it is not a setting.
gboolean gst_kyutai_settings_set_property(GstElement* element, GstKyutaiSettings* settings,
                                          guint offset, const GValue* value);
gboolean gst_kyutai_settings_get_property(GstElement* element, GstKyutaiSettings* settings,
                                          guint offset, GValue* value);
// Records the format of the model loaded (Auto once it is released): `weights` and `dtype` read
// it back meanwhile.
void gst_kyutai_settings_set_resolved(GstElement* element, GstKyutaiSettings* settings,
                                      kyutai::WeightFormat format);

// The settings copied at start, so that streaming never reads properties.
struct GstKyutaiConfig {
  std::string model, device;
  int threads = GST_KYUTAI_DEFAULT_THREADS;
  kyutai::WeightFormat weights = GST_KYUTAI_DEFAULT_WEIGHTS;
  std::string refused_dtype;  // not empty: a dtype no format has
};
GstKyutaiConfig gst_kyutai_settings_copy(GstElement* element, const GstKyutaiSettings* settings);

// Where an error comes from: the call site's file, function and line, so that an error posted
// by a helper points at the element's code.
struct GstKyutaiSite {
  const char* file;
  const char* function;
  int line;
};
#define GST_KYUTAI_SITE (GstKyutaiSite{__FILE__, GST_FUNCTION, __LINE__})

// A GStreamer error domain and code.
struct GstKyutaiErrorCode {
  GQuark domain;
  gint code;
};
#define GST_KYUTAI_ERROR_CODE(domain, code) \
  (GstKyutaiErrorCode{GST_##domain##_ERROR, GST_##domain##_ERROR_##code})
bool gst_kyutai_error_code_is(GstKyutaiErrorCode a, GstKyutaiErrorCode b);
// Whether `code` is RESOURCE/NOT_FOUND (a sentence that says "not found").
inline bool gst_kyutai_error_is_not_found(GstKyutaiErrorCode code) {
  return gst_kyutai_error_code_is(code, GST_KYUTAI_ERROR_CODE(RESOURCE, NOT_FOUND));
}

// The one table from the library's exceptions to element errors (docs/ELEMENTS.md, "Errors"):
// NotFoundError is RESOURCE/NOT_FOUND; FormatError and CheckpointError are LIBRARY/INIT;
// ConfigError is RESOURCE/SETTINGS where the call checks settings (its `fallback` is
// RESOURCE/SETTINGS) and LIBRARY/INIT elsewhere (a configuration file); InputError and anything
// else is the call site's `fallback` (STREAM/ENCODE or STREAM/DECODE while streaming).
GstKyutaiErrorCode gst_kyutai_error_code(const std::exception_ptr& error,
                                         GstKyutaiErrorCode fallback);
// The exception's message, for the error's debug text.
std::string gst_kyutai_error_detail(const std::exception_ptr& error);

// Posts an element error with a sentence for the user and the technical detail, located at
// `site`.
void gst_kyutai_post_error(GstElement* element, GstKyutaiErrorCode code, const std::string& text,
                           const std::string& detail, const GstKyutaiSite& site);

#define GST_KYUTAI_POST_ERROR(element, domain, code, text, detail) \
  gst_kyutai_post_error(element, GST_KYUTAI_ERROR_CODE(domain, code), text, detail, GST_KYUTAI_SITE)

// Checks a device name; a bad one is RESOURCE/SETTINGS ("Cannot run `what` on device ...").
bool gst_kyutai_check_device(GstElement* element, const std::string& device, const char* what,
                             const GstKyutaiSite& site);
#define GST_KYUTAI_CHECK_DEVICE(element, device, what) \
  gst_kyutai_check_device(element, device, what, GST_KYUTAI_SITE)

// Checks the weight format for `config.device`: a refused dtype, or a CPU-only format on a GPU,
// is RESOURCE/SETTINGS naming the accepted values.
bool gst_kyutai_check_weights(GstElement* element, const GstKyutaiConfig& config,
                              const GstKyutaiSite& site);
#define GST_KYUTAI_CHECK_WEIGHTS(element, config) \
  gst_kyutai_check_weights(element, config, GST_KYUTAI_SITE)

// The sentence for the user: a string, or a function of the error code (to say "not found"
// differently from "invalid").
template <typename Sentence>
std::string gst_kyutai_sentence(const Sentence& what, GstKyutaiErrorCode code) {
  if constexpr (std::is_invocable_v<const Sentence&, GstKyutaiErrorCode>)
    return what(code);
  else
    return std::string(what);
}

// Runs `body`; an exception becomes an element error whose domain and code come from
// gst_kyutai_error_code, located at `site`. Returns false after posting. Use GST_KYUTAI_TRY.
template <typename Sentence, typename Body>
bool gst_kyutai_try(const GstKyutaiSite& site, GstElement* element, GstKyutaiErrorCode fallback,
                    const Sentence& what, Body&& body) {
  try {
    body();
    return true;
  } catch (...) {
    const std::exception_ptr error = std::current_exception();
    const GstKyutaiErrorCode code = gst_kyutai_error_code(error, fallback);
    gst_kyutai_post_error(element, code, gst_kyutai_sentence(what, code),
                          gst_kyutai_error_detail(error), site);
  }
  return false;
}

// GST_KYUTAI_TRY(element, STREAM, DECODE, "sentence", [&] { ... }): gst_kyutai_try at the
// caller's file and line, with the caller's default domain and code.
#define GST_KYUTAI_TRY(element, domain, code, what, ...) \
  gst_kyutai_try(GST_KYUTAI_SITE, element, GST_KYUTAI_ERROR_CODE(domain, code), what, __VA_ARGS__)
