/**
 * SECTION:element-mimidec
 * @title: mimidec
 * @see_also: mimienc
 *
 * Decodes Mimi codes (audio/x-mimi, see docs/MEDIA-TYPE.md) into mono 32-bit float audio at the
 * model's sample rate, frame by frame as a live stream: each code frame gives frame-size
 * samples. Input buffers without timestamps are timed by counting frames; a GAP event becomes
 * silence of the same duration. With framed=false in the caps the input is a byte stream of
 * concatenated frames (a file written by mimienc ! filesink) and mimidec cuts it itself.
 *
 * ## Example pipelines
 * |[
 * gst-launch-1.0 filesrc location=speech.wav ! wavparse ! audioconvert ! audioresample ! \
 *     mimienc ! mimidec ! audioconvert ! audioresample ! autoaudiosink
 * gst-launch-1.0 filesrc location=speech.mimi ! audio/x-mimi,codebooks=8,framed=false ! \
 *     mimidec ! audioconvert ! wavenc ! filesink location=decoded.wav
 * ]|
 */
#include "gstmimidec.h"

#include <gst/audio/audio.h>

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gstmimicommon.h"
#include "kyutai/mimi.h"

GST_DEBUG_CATEGORY_STATIC(gst_mimi_dec_debug);
#define GST_CAT_DEFAULT gst_mimi_dec_debug

// C++ state, new-ed in _init and deleted in _finalize.
struct GstMimiDecPrivate {
  // Set in start() and dropped in stop(); used by the streaming thread under the stream lock.
  std::shared_ptr<const kyutai::Mimi> mimi;
  std::unique_ptr<kyutai::MimiDecoder> decoder;
  // From the input caps, under the stream lock.
  int codebooks = 0;
  bool framed = true;
  std::vector<int64_t> codes;
  bool dirty = false;  // frames were decoded since the last reset
};

struct _GstMimiDec {
  GstAudioDecoder parent;

  // Properties, under the object lock.
  GstKyutaiSettings settings;
  // The model's format while started, zeros otherwise; under the object lock because caps
  // queries read it from any thread.
  gint model_rate;
  gint model_frame_size;
  gint model_codebooks;
  gint model_cardinality;
  // Bytes per frame of the negotiated input, 0 before caps; under the object lock (queries).
  gint frame_bytes;

  GstMimiDecPrivate* priv;
};

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE(
    "sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS(GST_KYUTAI_MIMI_TEMPLATE_CAPS));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE(
    "src", GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS("audio/x-raw, format = (string) F32LE, layout = (string) interleaved, "
                    "rate = (int) [ 1, MAX ], channels = (int) 1"));

#define gst_mimi_dec_parent_class parent_class
G_DEFINE_TYPE(GstMimiDec, gst_mimi_dec, GST_TYPE_AUDIO_DECODER);
GST_ELEMENT_REGISTER_DEFINE(mimidec, "mimidec", GST_RANK_PRIMARY, GST_TYPE_MIMI_DEC);

static void gst_mimi_dec_set_property(GObject* object, guint prop_id, const GValue* value,
                                      GParamSpec* pspec) {
  GstMimiDec* self = GST_MIMI_DEC(object);
  if (!gst_kyutai_settings_set_property(GST_ELEMENT(self), &self->settings,
                                        prop_id - PROP_MIMI_MODEL, value))
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
}

static void gst_mimi_dec_get_property(GObject* object, guint prop_id, GValue* value,
                                      GParamSpec* pspec) {
  GstMimiDec* self = GST_MIMI_DEC(object);
  if (!gst_kyutai_settings_get_property(GST_ELEMENT(self), &self->settings,
                                        prop_id - PROP_MIMI_MODEL, value))
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
}

static void gst_mimi_dec_publish_format(GstMimiDec* self, const kyutai::MimiFormat* format) {
  GstObjectLocker lock(self);
  self->frame_bytes = 0;
  self->model_rate = format ? format->sample_rate : 0;
  self->model_frame_size = format ? format->frame_size : 0;
  self->model_codebooks = format ? format->total_codebooks : 0;
  self->model_cardinality = format ? format->cardinality : 0;
}

static gboolean gst_mimi_dec_start(GstAudioDecoder* decoder) {
  GstMimiDec* self = GST_MIMI_DEC(decoder);
  GstMimiDecPrivate* priv = self->priv;
  const GstKyutaiConfig config = gst_kyutai_settings_copy(GST_ELEMENT(self), &self->settings);
  priv->mimi = gst_mimi_load_model(GST_ELEMENT(self), config);
  if (!priv->mimi) return FALSE;
  const bool ok =
      GST_KYUTAI_TRY(GST_ELEMENT(self), LIBRARY, INIT, "Cannot start a Mimi decoding stream.",
                     [&] { priv->decoder = std::make_unique<kyutai::MimiDecoder>(priv->mimi); });
  if (!ok) {
    priv->mimi.reset();
    return FALSE;
  }
  priv->codebooks = 0;
  priv->dirty = false;
  const kyutai::MimiFormat& format = priv->mimi->format();
  GST_INFO_OBJECT(self, "model %s: %d Hz, %d samples per frame, %d codebooks of %d entries",
                  config.model.c_str(), format.sample_rate, format.frame_size,
                  format.total_codebooks, format.cardinality);
  gst_mimi_dec_publish_format(self, &format);
  // A GAP reaches handle_frame as an empty buffer, which becomes silence.
  gst_audio_decoder_set_plc_aware(decoder, TRUE);
  // Byte positions convert exactly to time (sink_query), so BYTES segments from filesrc work.
  gst_audio_decoder_set_estimate_rate(decoder, TRUE);
  return TRUE;
}

static gboolean gst_mimi_dec_stop(GstAudioDecoder* decoder) {
  GstMimiDec* self = GST_MIMI_DEC(decoder);
  gst_mimi_dec_publish_format(self, nullptr);
  self->priv->decoder.reset();
  self->priv->mimi.reset();
  return TRUE;
}

// Once started, offers exactly the model's format so that a capsfilter giving only
// codebooks (and framed) fixates to the right caps.
static GstCaps* gst_mimi_dec_getcaps(GstAudioDecoder* decoder, GstCaps* filter) {
  GstMimiDec* self = GST_MIMI_DEC(decoder);
  GstCaps* caps = gst_static_pad_template_get_caps(&sink_template);
  {
    GstObjectLocker lock(self);
    if (self->model_rate > 0) {
      caps = gst_caps_make_writable(caps);
      gst_caps_set_simple(caps, "rate", G_TYPE_INT, self->model_rate, "frame-size", G_TYPE_INT,
                          self->model_frame_size, "codebooks", GST_TYPE_INT_RANGE, 1,
                          self->model_codebooks, "cardinality", G_TYPE_INT, self->model_cardinality,
                          nullptr);
    }
  }
  GstCaps* result = gst_audio_decoder_proxy_getcaps(decoder, caps, filter);
  gst_caps_unref(caps);
  return result;
}

// Returns false after posting an error.
static bool gst_mimi_dec_reset_stream(GstMimiDec* self) {
  GstMimiDecPrivate* priv = self->priv;
  if (!priv->dirty || !priv->decoder) return true;
  GST_DEBUG_OBJECT(self, "resetting the streaming state");
  priv->dirty = false;
  return GST_KYUTAI_TRY(GST_ELEMENT(self), STREAM, DECODE,
                        "Cannot restart the Mimi decoding stream.",
                        [&] { priv->decoder->reset(); });
}

// Empty when `field` is absent or equal to the model's value, otherwise why not.
static std::string gst_mimi_dec_check_field(const GstStructure* s, const char* field,
                                            int expected) {
  gint value = 0;
  if (!gst_structure_has_field(s, field)) return {};
  if (!gst_structure_get_int(s, field, &value)) return std::string(field) + " is not an integer";
  if (value == expected) return {};
  return std::string(field) + " is " + std::to_string(value) + " but the model's is " +
         std::to_string(expected);
}

// Why the caps do not fit the model, or an empty string when they do.
static std::string gst_mimi_dec_check_caps(const GstStructure* s, const kyutai::MimiFormat& f,
                                           int* codebooks) {
  if (!gst_structure_get_int(s, "codebooks", codebooks)) return "codebooks is missing";
  if (*codebooks < 1 || *codebooks > f.total_codebooks)
    return "codebooks is " + std::to_string(*codebooks) + " but the model has " +
           std::to_string(f.total_codebooks);
  for (auto [field, expected] : {std::pair<const char*, int>{"rate", f.sample_rate},
                                 {"frame-size", f.frame_size},
                                 {"cardinality", f.cardinality},
                                 {"channels", 1}}) {
    const std::string why = gst_mimi_dec_check_field(s, field, expected);
    if (!why.empty()) return why;
  }
  return {};
}

static gboolean gst_mimi_dec_set_format(GstAudioDecoder* decoder, GstCaps* caps) {
  GstMimiDec* self = GST_MIMI_DEC(decoder);
  GstMimiDecPrivate* priv = self->priv;
  const kyutai::MimiFormat& format = priv->mimi->format();
  const GstStructure* s = gst_caps_get_structure(caps, 0);
  int codebooks = 0;
  const std::string why = gst_mimi_dec_check_caps(s, format, &codebooks);
  if (!why.empty()) {
    g_autofree gchar* text = gst_caps_to_string(caps);
    GST_ELEMENT_ERROR(self, STREAM, FORMAT,
                      ("These Mimi codes do not fit the model: %s.", why.c_str()),
                      ("caps %s", text));
    return FALSE;
  }
  gboolean framed = TRUE;
  gst_structure_get_boolean(s, "framed", &framed);
  priv->codebooks = codebooks;
  priv->framed = framed;
  priv->codes.assign(codebooks, 0);
  gst_kyutai_locked(self, [&] { self->frame_bytes = GST_KYUTAI_MIMI_CODE_BYTES * codebooks; });

  GstAudioInfo info;
  gst_audio_info_set_format(&info, GST_AUDIO_FORMAT_F32LE, format.sample_rate, 1, nullptr);
  if (!gst_audio_decoder_set_output_format(decoder, &info)) return FALSE;
  GST_DEBUG_OBJECT(self, "%d codebooks, %s input", codebooks, framed ? "framed" : "byte-stream");
  return gst_mimi_dec_reset_stream(self);  // new format, new stream
}

// Framed input: each buffer is one frame, checked in handle_frame. Byte streams (framed=false)
// are cut into frames of codebooks x 2 bytes.
static GstFlowReturn gst_mimi_dec_parse(GstAudioDecoder* decoder, GstAdapter* adapter, gint* offset,
                                        gint* length) {
  GstMimiDecPrivate* priv = GST_MIMI_DEC(decoder)->priv;
  const gsize available = gst_adapter_available(adapter);
  *offset = 0;
  if (priv->framed) {
    *length = static_cast<gint>(available);
    return GST_FLOW_OK;
  }
  const gsize frame_bytes = 2 * static_cast<gsize>(priv->codebooks);
  if (available < frame_bytes) return GST_FLOW_EOS;  // need more data
  *length = static_cast<gint>(frame_bytes);
  return GST_FLOW_OK;
}

// A GAP arrives as an empty buffer carrying its time span. Up to GST_KYUTAI_MAX_GAP_FILL it
// becomes that much silence (one bounded buffer); a longer one goes downstream as a GAP. Either
// way the next frame starts a new stream, since the codes around the gap are not contiguous.
static GstFlowReturn gst_mimi_dec_fill_gap(GstMimiDec* self, GstBuffer* gap) {
  if (!gst_mimi_dec_reset_stream(self)) return GST_FLOW_ERROR;
  GstAudioDecoder* decoder = GST_AUDIO_DECODER(self);
  const GstClockTime duration = GST_BUFFER_DURATION(gap);
  if (GST_CLOCK_TIME_IS_VALID(duration) && duration > GST_KYUTAI_MAX_GAP_FILL) {
    GST_DEBUG_OBJECT(self, "gap of %" GST_TIME_FORMAT ": forwarded", GST_TIME_ARGS(duration));
    const GstFlowReturn ret = gst_audio_decoder_finish_frame(decoder, nullptr, 1);
    gst_pad_push_event(GST_AUDIO_DECODER_SRC_PAD(self),
                       gst_event_new_gap(GST_BUFFER_PTS(gap), duration));
    return ret;
  }
  // The output rate, which is the model's unless a GAP came before any caps.
  const int rate = GST_AUDIO_INFO_RATE(gst_audio_decoder_get_audio_info(decoder));
  const guint64 samples = GST_CLOCK_TIME_IS_VALID(duration)
                              ? gst_util_uint64_scale_round(duration, rate, GST_SECOND)
                              : 0;
  GST_DEBUG_OBJECT(self, "gap of %" GST_TIME_FORMAT ": %" G_GUINT64_FORMAT " samples of silence",
                   GST_TIME_ARGS(duration), samples);
  if (samples == 0) return gst_audio_decoder_finish_frame(decoder, nullptr, 1);
  GstBuffer* silence = gst_buffer_new_allocate(nullptr, samples * sizeof(float), nullptr);
  gst_buffer_memset(silence, 0, 0, samples * sizeof(float));
  return gst_audio_decoder_finish_frame(decoder, silence, 1);
}

// Reads one frame of codes into priv->codes, or posts STREAM/DECODE.
static gboolean gst_mimi_dec_unpack(GstMimiDec* self, GstBuffer* buffer) {
  GstMimiDecPrivate* priv = self->priv;
  const std::string why = gst_kyutai_mimi_unpack(
      buffer, priv->codes.size(), priv->mimi->format().cardinality, priv->codes.data(),
      " (a byte stream such as a file needs framed=false in its caps)");
  if (why.empty()) return TRUE;
  GST_ELEMENT_ERROR(self, STREAM, DECODE, ("%s", why.c_str()),
                    ("buffer at %" GST_TIME_FORMAT, GST_TIME_ARGS(GST_BUFFER_PTS(buffer))));
  return FALSE;
}

// Drops the samples that a GstAudioClippingMeta on the codes marks as padding (mimienc puts one
// on a partial last frame). GstAudioDecoder does not: its default transform_meta does not copy
// the meta, and opusdec clips by hand too. Returns false when nothing is left.
static bool gst_mimi_dec_clip(GstMimiDec* self, GstBuffer* codes, GstBuffer* out) {
  const GstAudioClippingMeta* meta = gst_buffer_get_audio_clipping_meta(codes);
  if (!meta) return true;
  const int rate = self->priv->mimi->format().sample_rate;
  guint64 start = meta->start, end = meta->end;
  if (meta->format == GST_FORMAT_TIME) {
    start = gst_util_uint64_scale_round(start, rate, GST_SECOND);
    end = gst_util_uint64_scale_round(end, rate, GST_SECOND);
  } else if (meta->format != GST_FORMAT_DEFAULT) {
    GST_WARNING_OBJECT(self, "ignoring a clipping meta in %s", gst_format_get_name(meta->format));
    return true;
  }
  const guint64 samples = gst_buffer_get_size(out) / sizeof(float);
  start = std::min(start, samples);
  end = std::min(end, samples - start);
  GST_DEBUG_OBJECT(self,
                   "clipping %" G_GUINT64_FORMAT " samples at the start and %" G_GUINT64_FORMAT
                   " at the end",
                   start, end);
  if (start + end == samples) return false;
  gst_buffer_resize(out, start * sizeof(float), (samples - start - end) * sizeof(float));
  return true;
}

static GstFlowReturn gst_mimi_dec_handle_frame(GstAudioDecoder* decoder, GstBuffer* buffer) {
  GstMimiDec* self = GST_MIMI_DEC(decoder);
  GstMimiDecPrivate* priv = self->priv;
  if (!buffer) return GST_FLOW_OK;  // drain: nothing is held back
  if (gst_buffer_get_size(buffer) == 0) return gst_mimi_dec_fill_gap(self, buffer);
  if (!gst_mimi_dec_unpack(self, buffer)) return GST_FLOW_ERROR;

  const int samples = priv->mimi->format().frame_size;
  GstBuffer* out = gst_buffer_new_allocate(nullptr, samples * sizeof(float), nullptr);
  GstMapInfo map;
  gst_buffer_map(out, &map, GST_MAP_WRITE);
  const bool ok =
      GST_KYUTAI_TRY(GST_ELEMENT(self), STREAM, DECODE, "Mimi could not decode a frame.", [&] {
        priv->decoder->decode_frame(priv->codes.data(), priv->codebooks,
                                    reinterpret_cast<float*>(map.data));
      });
  gst_buffer_unmap(out, &map);
  if (!ok) {
    gst_buffer_unref(out);
    return GST_FLOW_ERROR;
  }
  priv->dirty = true;
  if (!gst_mimi_dec_clip(self, buffer, out)) {
    gst_buffer_unref(out);
    return gst_audio_decoder_finish_frame(decoder, nullptr, 1);
  }
  return gst_audio_decoder_finish_frame(decoder, out, 1);
}

// Codes have a constant size per frame, so bytes and time convert exactly; the base class uses
// this for BYTES segments and for duration, position and seeking on files.
static gboolean gst_mimi_dec_convert(GstMimiDec* self, GstQuery* query) {
  GstFormat src_format, dest_format;
  gint64 src_value, dest_value;
  gst_query_parse_convert(query, &src_format, &src_value, &dest_format, nullptr);
  // One snapshot of both: a format published in between must not mix with the old one.
  const auto [frame_bytes, frame_time] = gst_kyutai_locked(self, [&] {
    return std::pair<guint64, guint64>(
        self->frame_bytes,
        self->model_rate > 0 ? gst_mimi_samples_to_time(self->model_frame_size, self->model_rate)
                             : 0);
  });
  if (src_format == dest_format || src_value == -1) {
    dest_value = src_value;
  } else if (frame_bytes == 0 || frame_time == 0 || src_value < 0) {
    return FALSE;
  } else if (src_format == GST_FORMAT_BYTES && dest_format == GST_FORMAT_TIME) {
    dest_value = gst_util_uint64_scale(src_value, frame_time, frame_bytes);
  } else if (src_format == GST_FORMAT_TIME && dest_format == GST_FORMAT_BYTES) {
    dest_value = static_cast<gint64>(src_value / frame_time * frame_bytes);
  } else {
    return FALSE;
  }
  gst_query_set_convert(query, src_format, src_value, dest_format, dest_value);
  return TRUE;
}

static gboolean gst_mimi_dec_sink_query(GstAudioDecoder* decoder, GstQuery* query) {
  if (GST_QUERY_TYPE(query) == GST_QUERY_CONVERT)
    return gst_mimi_dec_convert(GST_MIMI_DEC(decoder), query);
  return GST_AUDIO_DECODER_CLASS(parent_class)->sink_query(decoder, query);
}

// The base class estimates a byte stream's duration only after a second of audio; the exact
// conversion answers at once.
static gboolean gst_mimi_dec_src_query(GstAudioDecoder* decoder, GstQuery* query) {
  if (GST_AUDIO_DECODER_CLASS(parent_class)->src_query(decoder, query)) return TRUE;
  GstFormat format;
  gint64 bytes, time;
  if (GST_QUERY_TYPE(query) != GST_QUERY_DURATION) return FALSE;
  gst_query_parse_duration(query, &format, nullptr);
  GstPad* sinkpad = GST_AUDIO_DECODER_SINK_PAD(decoder);
  if (format != GST_FORMAT_TIME ||
      !gst_pad_peer_query_duration(sinkpad, GST_FORMAT_BYTES, &bytes) ||
      !gst_pad_query_convert(sinkpad, GST_FORMAT_BYTES, bytes, GST_FORMAT_TIME, &time))
    return FALSE;
  gst_query_set_duration(query, GST_FORMAT_TIME, time);
  return TRUE;
}

// Called on FLUSH_STOP (hard) and on a DISCONT buffer (soft, after draining).
static void gst_mimi_dec_flush(GstAudioDecoder* decoder, gboolean hard) {
  GstMimiDec* self = GST_MIMI_DEC(decoder);
  GST_DEBUG_OBJECT(self, "%s", hard ? "flush" : "discontinuity");
  gst_mimi_dec_reset_stream(self);
}

static void gst_mimi_dec_init(GstMimiDec* self) {
  self->priv = new GstMimiDecPrivate();
  gst_kyutai_settings_init(&self->settings, FALSE);
  GstAudioDecoder* decoder = GST_AUDIO_DECODER(self);
  gst_audio_decoder_set_needs_format(decoder, TRUE);
  gst_audio_decoder_set_plc(decoder, TRUE);
  // Caps that do not fit the model reach set_format, which says what is wrong.
  gst_audio_decoder_set_use_default_pad_acceptcaps(decoder, TRUE);
  GST_PAD_SET_ACCEPT_TEMPLATE(GST_AUDIO_DECODER_SINK_PAD(self));
}

static void gst_mimi_dec_finalize(GObject* object) {
  GstMimiDec* self = GST_MIMI_DEC(object);
  delete self->priv;
  self->priv = nullptr;
  gst_kyutai_settings_clear(&self->settings);
  G_OBJECT_CLASS(parent_class)->finalize(object);
}

static void gst_mimi_dec_class_init(GstMimiDecClass* klass) {
  GObjectClass* gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass* element_class = GST_ELEMENT_CLASS(klass);
  GstAudioDecoderClass* decoder_class = GST_AUDIO_DECODER_CLASS(klass);

  gobject_class->set_property = gst_mimi_dec_set_property;
  gobject_class->get_property = gst_mimi_dec_get_property;
  gobject_class->finalize = gst_mimi_dec_finalize;
  gst_mimi_install_settings(gobject_class);

  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_set_static_metadata(
      element_class, "Mimi decoder", "Codec/Decoder/Audio",
      "Decodes Mimi codes into mono float audio at the model's rate (24 kHz for Kyutai's Mimi) "
      "as a live stream: each frame of codes gives frame-size samples (80 ms), timestamped from "
      "the input or, without timestamps, by counting frames; a GstAudioClippingMeta (mimienc's "
      "partial last frame) drops the samples it marks. A GAP becomes silence (plc=true, "
      "the default; plc=false forwards it); FLUSH and DISCONT start a new stream. With "
      "framed=false in the caps the input is a byte stream of "
      "frames, such as a file written by mimienc ! filesink.",
      "gst-moshi developers");
  gst_element_class_add_static_metadata(
      element_class, "example",
      "gst-launch-1.0 filesrc location=speech.mimi ! audio/x-mimi,codebooks=8,framed=false ! "
      "mimidec model=kyutai/moshiko-pytorch-bf16 ! audioconvert ! audioresample ! "
      "autoaudiosink");

  decoder_class->start = GST_DEBUG_FUNCPTR(gst_mimi_dec_start);
  decoder_class->stop = GST_DEBUG_FUNCPTR(gst_mimi_dec_stop);
  decoder_class->set_format = GST_DEBUG_FUNCPTR(gst_mimi_dec_set_format);
  decoder_class->parse = GST_DEBUG_FUNCPTR(gst_mimi_dec_parse);
  decoder_class->handle_frame = GST_DEBUG_FUNCPTR(gst_mimi_dec_handle_frame);
  decoder_class->flush = GST_DEBUG_FUNCPTR(gst_mimi_dec_flush);
  decoder_class->getcaps = GST_DEBUG_FUNCPTR(gst_mimi_dec_getcaps);
  decoder_class->sink_query = GST_DEBUG_FUNCPTR(gst_mimi_dec_sink_query);
  decoder_class->src_query = GST_DEBUG_FUNCPTR(gst_mimi_dec_src_query);

  GST_DEBUG_CATEGORY_INIT(gst_mimi_dec_debug, "mimidec", 0, "Mimi decoder");
}
