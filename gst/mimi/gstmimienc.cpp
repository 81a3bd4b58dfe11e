/**
 * SECTION:element-mimienc
 * @title: mimienc
 * @see_also: mimidec
 *
 * Encodes mono 32-bit float audio at the model's sample rate (24 kHz for the released Mimi) into
 * Mimi codes, frame by frame as a live stream: each output buffer holds the codes of one frame
 * (80 ms for the released Mimi) as little-endian guint16, in codebook order. See
 * docs/MEDIA-TYPE.md for audio/x-mimi.
 *
 * ## Example pipeline
 * |[
 * gst-launch-1.0 filesrc location=speech.wav ! wavparse ! audioconvert ! audioresample ! \
 *     mimienc model=kyutai/moshiko-pytorch-bf16 ! filesink location=speech.mimi
 * ]|
 */
#include "gstmimienc.h"

#include <gst/audio/audio.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "gstmimicommon.h"
#include "kyutai/mimi.h"

GST_DEBUG_CATEGORY_STATIC(gst_mimi_enc_debug);
#define GST_CAT_DEFAULT gst_mimi_enc_debug

#define DEFAULT_NUM_CODEBOOKS kyutai::kDefaultNumCodebooks

enum { PROP_NUM_CODEBOOKS = PROP_MIMI_LAST };

// C++ state, new-ed in _init and deleted in _finalize.
struct GstMimiEncPrivate {
  // Set in start() and dropped in stop(); used by the streaming thread under the stream lock.
  std::shared_ptr<const kyutai::Mimi> mimi;
  std::unique_ptr<kyutai::MimiEncoder> encoder;
  std::vector<float> pcm;  // one frame, zero-padded when the last one is partial
  std::vector<int64_t> codes;
  // Stream lock: a DISCONT buffer arrived, and frames were encoded since the last reset.
  bool reset_pending = false;
  bool dirty = false;
  bool warned_samples = false;  // stream lock: the bad-samples warning was posted this stream
  // Streaming thread: the end of the input time covered so far (audio or filled GAPs), so a
  // GAP over time already covered adds no silence; GST_CLOCK_TIME_NONE after a reset.
  GstClockTime covered_end = GST_CLOCK_TIME_NONE;
};

struct _GstMimiEnc {
  GstAudioEncoder parent;

  // Properties, under the object lock.
  GstKyutaiSettings settings;
  gint num_codebooks;
  // The model's sample rate while started, 0 otherwise; under the object lock because caps
  // queries read it from any thread.
  gint model_rate;

  GstMimiEncPrivate* priv;
};

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE(
    "sink", GST_PAD_SINK, GST_PAD_ALWAYS,
    GST_STATIC_CAPS("audio/x-raw, format = (string) F32LE, layout = (string) interleaved, "
                    "rate = (int) [ 1, MAX ], channels = (int) 1"));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE(
    "src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS(GST_KYUTAI_MIMI_TEMPLATE_CAPS));

#define gst_mimi_enc_parent_class parent_class
G_DEFINE_TYPE(GstMimiEnc, gst_mimi_enc, GST_TYPE_AUDIO_ENCODER);
GST_ELEMENT_REGISTER_DEFINE(mimienc, "mimienc", GST_RANK_PRIMARY, GST_TYPE_MIMI_ENC);

static void gst_mimi_enc_set_property(GObject* object, guint prop_id, const GValue* value,
                                      GParamSpec* pspec) {
  GstMimiEnc* self = GST_MIMI_ENC(object);
  if (gst_kyutai_settings_set_property(GST_ELEMENT(self), &self->settings,
                                       prop_id - PROP_MIMI_MODEL, value))
    return;
  if (prop_id == PROP_NUM_CODEBOOKS) {
    GstObjectLocker lock(self);
    self->num_codebooks = g_value_get_int(value);
    return;
  }
  G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
}

static void gst_mimi_enc_get_property(GObject* object, guint prop_id, GValue* value,
                                      GParamSpec* pspec) {
  GstMimiEnc* self = GST_MIMI_ENC(object);
  if (gst_kyutai_settings_get_property(GST_ELEMENT(self), &self->settings,
                                       prop_id - PROP_MIMI_MODEL, value))
    return;
  if (prop_id == PROP_NUM_CODEBOOKS) {
    GstObjectLocker lock(self);
    g_value_set_int(value, self->num_codebooks);
    return;
  }
  G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
}

// Creates the stream for the configured codebook count, which the model must have.
static gboolean gst_mimi_enc_open_stream(GstMimiEnc* self, int num_codebooks) {
  GstMimiEncPrivate* priv = self->priv;
  const kyutai::MimiFormat& format = priv->mimi->format();
  if (num_codebooks > format.total_codebooks) {
    GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS,
                      ("num-codebooks is %d but the model has only %d codebooks.", num_codebooks,
                       format.total_codebooks),
                      (NULL));
    return FALSE;
  }
  const bool ok = GST_KYUTAI_TRY(
      GST_ELEMENT(self), LIBRARY, INIT, "Cannot start a Mimi encoding stream.",
      [&] { priv->encoder = std::make_unique<kyutai::MimiEncoder>(priv->mimi, num_codebooks); });
  if (!ok) return FALSE;
  priv->pcm.assign(format.frame_size, 0.0f);
  priv->codes.assign(num_codebooks, 0);
  priv->reset_pending = priv->dirty = priv->warned_samples = false;
  priv->covered_end = GST_CLOCK_TIME_NONE;
  return TRUE;
}

static gboolean gst_mimi_enc_start(GstAudioEncoder* encoder) {
  GstMimiEnc* self = GST_MIMI_ENC(encoder);
  const GstKyutaiConfig config = gst_kyutai_settings_copy(GST_ELEMENT(self), &self->settings);
  const int num_codebooks = gst_kyutai_locked(self, [&] { return self->num_codebooks; });

  self->priv->mimi = gst_mimi_load_model(GST_ELEMENT(self), config);
  if (!self->priv->mimi || !gst_mimi_enc_open_stream(self, num_codebooks)) {
    self->priv->mimi.reset();
    return FALSE;
  }
  const kyutai::MimiFormat& format = self->priv->mimi->format();
  GST_INFO_OBJECT(self, "model %s: %d Hz, %d samples per frame, %d of %d codebooks",
                  config.model.c_str(), format.sample_rate, format.frame_size, num_codebooks,
                  format.total_codebooks);
  gst_kyutai_locked(self, [&] { self->model_rate = format.sample_rate; });
  // A frame is encoded once its last sample is in: one frame of latency.
  const GstClockTime frame = gst_mimi_samples_to_time(format.frame_size, format.sample_rate);
  gst_audio_encoder_set_latency(encoder, frame, frame);
  return TRUE;
}

static gboolean gst_mimi_enc_stop(GstAudioEncoder* encoder) {
  GstMimiEnc* self = GST_MIMI_ENC(encoder);
  gst_kyutai_locked(self, [&] { self->model_rate = 0; });
  self->priv->encoder.reset();
  self->priv->mimi.reset();
  return TRUE;
}

// Before start() any rate is possible; afterwards only the model's, so that audioresample
// upstream converts to it.
static GstCaps* gst_mimi_enc_getcaps(GstAudioEncoder* encoder, GstCaps* filter) {
  GstMimiEnc* self = GST_MIMI_ENC(encoder);
  GstCaps* caps = gst_static_pad_template_get_caps(&sink_template);
  const gint rate = gst_kyutai_locked(self, [&] { return self->model_rate; });
  if (rate > 0) {
    caps = gst_caps_make_writable(caps);
    gst_caps_set_simple(caps, "rate", G_TYPE_INT, rate, nullptr);
  }
  GstCaps* result = gst_audio_encoder_proxy_getcaps(encoder, caps, filter);
  gst_caps_unref(caps);
  return result;
}

static void gst_mimi_enc_post_bitrate(GstMimiEnc* self, const kyutai::MimiFormat& format,
                                      int codebooks) {
  // Each code carries log2(cardinality) bits: 8 x 11 bits x 12.5 Hz = 1.1 kbps for Mimi.
  const double bits = codebooks * std::log2(static_cast<double>(format.cardinality));
  const guint bitrate = static_cast<guint>(bits * format.frame_rate + 0.5);
  g_autoptr(GstTagList) tags =
      gst_tag_list_new(GST_TAG_NOMINAL_BITRATE, bitrate, GST_TAG_CODEC, "Mimi", nullptr);
  gst_audio_encoder_merge_tags(GST_AUDIO_ENCODER(self), tags, GST_TAG_MERGE_REPLACE);
}

static gboolean gst_mimi_enc_set_format(GstAudioEncoder* encoder, GstAudioInfo* info) {
  GstMimiEnc* self = GST_MIMI_ENC(encoder);
  GstMimiEncPrivate* priv = self->priv;
  const kyutai::MimiFormat& format = priv->mimi->format();
  if (GST_AUDIO_INFO_RATE(info) != format.sample_rate || GST_AUDIO_INFO_CHANNELS(info) != 1) {
    GST_ELEMENT_ERROR(
        self, STREAM, FORMAT,
        ("mimienc needs mono audio at %d Hz, the model's rate, but got %d channels "
         "at %d Hz: put audioconvert ! audioresample before it.",
         format.sample_rate, GST_AUDIO_INFO_CHANNELS(info), GST_AUDIO_INFO_RATE(info)),
        (NULL));
    return FALSE;
  }
  // One frame per handle_frame, and the base class pads nothing: the last partial frame is
  // padded in handle_frame.
  gst_audio_encoder_set_frame_samples_min(encoder, format.frame_size);
  gst_audio_encoder_set_frame_samples_max(encoder, format.frame_size);
  gst_audio_encoder_set_frame_max(encoder, 1);

  const int codebooks = static_cast<int>(priv->codes.size());
  GstCaps* caps = gst_mimi_caps_new(format, codebooks);
  const gboolean ok = gst_audio_encoder_set_output_format(encoder, caps);
  gst_caps_unref(caps);
  gst_mimi_enc_post_bitrate(self, format, codebooks);
  priv->reset_pending = true;  // new format, new stream
  return ok;
}

// Returns false after posting an error.
static bool gst_mimi_enc_reset_stream(GstMimiEnc* self) {
  GstMimiEncPrivate* priv = self->priv;
  priv->reset_pending = false;
  if (!priv->dirty || !priv->encoder) return true;
  GST_DEBUG_OBJECT(self, "resetting the streaming state");
  priv->dirty = priv->warned_samples = false;
  return GST_KYUTAI_TRY(GST_ELEMENT(self), STREAM, ENCODE,
                        "Cannot restart the Mimi encoding stream.",
                        [&] { priv->encoder->reset(); });
}

// The library encoded non-finite or absurd samples as 0 (or clamped them) so that they cannot
// poison the stream; says so once per stream.
static void gst_mimi_enc_warn_samples(GstMimiEnc* self, size_t replaced, GstClockTime pts) {
  GST_LOG_OBJECT(self, "%zu bad samples replaced at %" GST_TIME_FORMAT, replaced,
                 GST_TIME_ARGS(pts));
  if (self->priv->warned_samples) return;
  self->priv->warned_samples = true;
  GST_ELEMENT_WARNING(
      self, STREAM, ENCODE,
      ("The audio has samples that are not numbers, infinite or beyond +-%g: "
       "they are encoded as silence (or clamped). Warned once per stream.",
       static_cast<double>(kyutai::kMaxSampleMagnitude)),
      ("%zu such samples in the frame at %" GST_TIME_FORMAT, replaced, GST_TIME_ARGS(pts)));
}

static GstFlowReturn gst_mimi_enc_handle_frame(GstAudioEncoder* encoder, GstBuffer* buffer) {
  GstMimiEnc* self = GST_MIMI_ENC(encoder);
  GstMimiEncPrivate* priv = self->priv;
  if (!buffer) return GST_FLOW_OK;  // drain: nothing is held back

  GstMapInfo map;
  if (!gst_buffer_map(buffer, &map, GST_MAP_READ)) return GST_FLOW_ERROR;
  const size_t samples = map.size / sizeof(float);
  g_assert(samples <= priv->pcm.size());
  std::fill(priv->pcm.begin(), priv->pcm.end(), 0.0f);
  memcpy(priv->pcm.data(), map.data, samples * sizeof(float));
  gst_buffer_unmap(buffer, &map);
  if (samples < priv->pcm.size())
    GST_DEBUG_OBJECT(self, "a partial frame of %zu samples, padded with zeros", samples);

  if (priv->reset_pending && !gst_mimi_enc_reset_stream(self)) return GST_FLOW_ERROR;
  size_t replaced = 0;
  const bool ok =
      GST_KYUTAI_TRY(GST_ELEMENT(self), STREAM, ENCODE, "Mimi could not encode a frame.", [&] {
        replaced =
            priv->encoder->encode_frame(priv->pcm.data(), priv->pcm.size(), priv->codes.data());
      });
  if (!ok) return GST_FLOW_ERROR;
  if (replaced > 0) gst_mimi_enc_warn_samples(self, replaced, GST_BUFFER_PTS(buffer));
  priv->dirty = true;
  GstBuffer* out = gst_kyutai_mimi_pack(priv->codes.data(), priv->codes.size());
  // The frame stands for the samples it got, as opusenc's last one does: the decoder drops
  // the padding (docs/MEDIA-TYPE.md), so a round trip keeps the input's length.
  if (samples < priv->pcm.size())
    gst_buffer_add_audio_clipping_meta(out, GST_FORMAT_DEFAULT, 0, priv->pcm.size() - samples);
  return gst_audio_encoder_finish_frame(encoder, out, static_cast<gint>(samples));
}

// Chains `samples` of silence from `ts` one frame at a time, so no gap needs a large buffer.
static void gst_mimi_enc_chain_silence(GstMimiEnc* self, GstClockTime ts, guint64 samples) {
  const kyutai::MimiFormat& format = self->priv->mimi->format();
  for (guint64 done = 0; done < samples; done += format.frame_size) {
    const guint64 n = std::min<guint64>(format.frame_size, samples - done);
    GstBuffer* silence = gst_buffer_new_allocate(nullptr, n * sizeof(float), nullptr);
    gst_buffer_memset(silence, 0, 0, n * sizeof(float));
    GST_BUFFER_PTS(silence) = ts + gst_mimi_samples_to_time(done, format.sample_rate);
    GST_BUFFER_DURATION(silence) = gst_mimi_samples_to_time(n, format.sample_rate);
    // Through the pad like any audio: the base class frames it with what is already queued.
    if (gst_pad_chain(GST_AUDIO_ENCODER_SINK_PAD(self), silence) != GST_FLOW_OK) return;
  }
}

// A GAP (no audio for a while) up to GST_KYUTAI_MAX_GAP_FILL is encoded as that much silence,
// so that the code stream stays continuous: a decoder keeps its state, and a conversation
// downstream keeps stepping once per frame. A longer one is a discontinuity: the next frame
// starts a new stream and the base class forwards the GAP. Returns false when the gap is not
// filled (longer, no format yet, no duration).
static bool gst_mimi_enc_fill_gap(GstMimiEnc* self, GstEvent* gap) {
  GstClockTime ts, duration;
  gst_event_parse_gap(gap, &ts, &duration);
  if (!self->priv->mimi || !gst_pad_has_current_caps(GST_AUDIO_ENCODER_SINK_PAD(self)) ||
      !GST_CLOCK_TIME_IS_VALID(ts) || !GST_CLOCK_TIME_IS_VALID(duration))
    return false;
  if (duration > GST_KYUTAI_MAX_GAP_FILL) {
    GST_DEBUG_OBJECT(self, "gap of %" GST_TIME_FORMAT ": a discontinuity", GST_TIME_ARGS(duration));
    GST_AUDIO_ENCODER_STREAM_LOCK(self);
    self->priv->reset_pending = true;
    GST_AUDIO_ENCODER_STREAM_UNLOCK(self);
    return false;
  }
  // Only the part of the GAP that no audio or earlier GAP covered yet: repeated GAPs at the same
  // time would otherwise each cost their length in silence, and timestamps would go backwards.
  const GstClockTime covered = self->priv->covered_end;
  const GstClockTime end = ts + duration;
  if (GST_CLOCK_TIME_IS_VALID(covered) && end <= covered) {
    GST_DEBUG_OBJECT(self, "gap up to %" GST_TIME_FORMAT ": already covered", GST_TIME_ARGS(end));
    return true;
  }
  if (GST_CLOCK_TIME_IS_VALID(covered) && covered > ts) ts = covered;
  const int rate = self->priv->mimi->format().sample_rate;
  const guint64 samples = gst_util_uint64_scale_round(end - ts, rate, GST_SECOND);
  if (samples == 0) return false;
  GST_DEBUG_OBJECT(self, "gap of %" GST_TIME_FORMAT ": %" G_GUINT64_FORMAT " samples of silence",
                   GST_TIME_ARGS(end - ts), samples);
  gst_mimi_enc_chain_silence(self, ts, samples);
  return true;
}

// GstAudioEncoder drops a segment that is not in TIME (raw audio straight from filesrc comes
// in BYTES) and would then push codes with no segment at all; an open TIME segment replaces it,
// and the input's times are counted from 0.
static GstEvent* gst_mimi_enc_time_segment(GstMimiEnc* self, GstEvent* event) {
  const GstSegment* segment;
  gst_event_parse_segment(event, &segment);
  if (segment->format == GST_FORMAT_TIME) return event;
  GST_DEBUG_OBJECT(self, "%s segment: an open TIME segment replaces it",
                   gst_format_get_name(segment->format));
  GstSegment time;
  gst_segment_init(&time, GST_FORMAT_TIME);
  GstEvent* replacement = gst_event_new_segment(&time);
  gst_event_set_seqnum(replacement, gst_event_get_seqnum(event));
  gst_event_unref(event);
  return replacement;
}

static gboolean gst_mimi_enc_sink_event(GstAudioEncoder* encoder, GstEvent* event) {
  GstMimiEnc* self = GST_MIMI_ENC(encoder);
  if (GST_EVENT_TYPE(event) == GST_EVENT_SEGMENT) event = gst_mimi_enc_time_segment(self, event);
  if (GST_EVENT_TYPE(event) == GST_EVENT_GAP && gst_mimi_enc_fill_gap(self, event)) {
    gst_event_unref(event);
    return TRUE;
  }
  // A new segment or a flush starts the input's time afresh.
  if (GST_EVENT_TYPE(event) == GST_EVENT_SEGMENT || GST_EVENT_TYPE(event) == GST_EVENT_FLUSH_STOP)
    self->priv->covered_end = GST_CLOCK_TIME_NONE;
  // The base class calls flush() only when it has undrained data; reset in any case.
  if (GST_EVENT_TYPE(event) == GST_EVENT_FLUSH_STOP) {
    GST_AUDIO_ENCODER_STREAM_LOCK(self);
    gst_mimi_enc_reset_stream(self);
    GST_AUDIO_ENCODER_STREAM_UNLOCK(self);
  }
  return GST_AUDIO_ENCODER_CLASS(parent_class)->sink_event(encoder, event);
}

// Moves the covered input time to the end of `buffer` (its duration, or its samples' length).
static void gst_mimi_enc_cover(GstMimiEnc* self, GstBuffer* buffer) {
  const GstClockTime pts = GST_BUFFER_PTS(buffer);
  if (!GST_CLOCK_TIME_IS_VALID(pts)) return;
  GstClockTime duration = GST_BUFFER_DURATION(buffer);
  const GstAudioInfo* info = gst_audio_encoder_get_audio_info(GST_AUDIO_ENCODER(self));
  if (!GST_CLOCK_TIME_IS_VALID(duration) && info->bpf > 0 && info->rate > 0)
    duration = gst_util_uint64_scale(gst_buffer_get_size(buffer) / info->bpf, GST_SECOND,
                                     info->rate);
  if (!GST_CLOCK_TIME_IS_VALID(duration)) return;
  // A discontinuity may restart time (a new stream from 0): its end replaces the old one.
  GstClockTime& covered = self->priv->covered_end;
  if (!GST_CLOCK_TIME_IS_VALID(covered) || pts + duration > covered ||
      GST_BUFFER_FLAG_IS_SET(buffer, GST_BUFFER_FLAG_DISCONT))
    covered = pts + duration;
}

// GstAudioEncoder hides input DISCONT flags from subclasses, so they are caught on the pad.
static GstPadProbeReturn gst_mimi_enc_buffer_probe(GstPad*, GstPadProbeInfo* info,
                                                   gpointer user_data) {
  GstMimiEnc* self = GST_MIMI_ENC(user_data);
  GstBuffer* buffer = nullptr;
  if (info->type & GST_PAD_PROBE_TYPE_BUFFER)
    buffer = GST_PAD_PROBE_INFO_BUFFER(info);
  else if (info->type & GST_PAD_PROBE_TYPE_BUFFER_LIST)
    buffer = gst_buffer_list_get(GST_PAD_PROBE_INFO_BUFFER_LIST(info), 0);
  if (buffer) gst_mimi_enc_cover(self, buffer);
  if (buffer && GST_BUFFER_FLAG_IS_SET(buffer, GST_BUFFER_FLAG_DISCONT)) {
    GST_AUDIO_ENCODER_STREAM_LOCK(self);
    GST_DEBUG_OBJECT(self, "discontinuity: the next frame starts a new stream");
    self->priv->reset_pending = true;
    GST_AUDIO_ENCODER_STREAM_UNLOCK(self);
  }
  return GST_PAD_PROBE_OK;
}

static void gst_mimi_enc_init(GstMimiEnc* self) {
  self->priv = new GstMimiEncPrivate();
  gst_kyutai_settings_init(&self->settings, FALSE);
  self->num_codebooks = DEFAULT_NUM_CODEBOOKS;
  GstPad* sinkpad = GST_AUDIO_ENCODER_SINK_PAD(self);
  // Caps with another rate reach set_format, which says what is wrong.
  GST_PAD_SET_ACCEPT_TEMPLATE(sinkpad);
  gst_pad_add_probe(
      sinkpad,
      static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST),
      gst_mimi_enc_buffer_probe, self, nullptr);
}

static void gst_mimi_enc_finalize(GObject* object) {
  GstMimiEnc* self = GST_MIMI_ENC(object);
  delete self->priv;
  self->priv = nullptr;
  gst_kyutai_settings_clear(&self->settings);
  G_OBJECT_CLASS(parent_class)->finalize(object);
}

static void gst_mimi_enc_install_properties(GObjectClass* gobject_class) {
  gst_mimi_install_settings(gobject_class);
  g_object_class_install_property(
      gobject_class, PROP_NUM_CODEBOOKS,
      g_param_spec_int("num-codebooks", "Number of codebooks",
                       "Codebooks per frame, from the first (semantic) one on: more codebooks, "
                       "more quality and bitrate. Moshi uses 8 (1.1 kbps with the released "
                       "Mimi); at most the model's count (32 for the released Mimi)",
                       1, GST_KYUTAI_MIMI_MAX_CODEBOOKS, DEFAULT_NUM_CODEBOOKS,
                       static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                                                GST_PARAM_MUTABLE_READY)));
}

static void gst_mimi_enc_class_init(GstMimiEncClass* klass) {
  GObjectClass* gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass* element_class = GST_ELEMENT_CLASS(klass);
  GstAudioEncoderClass* encoder_class = GST_AUDIO_ENCODER_CLASS(klass);

  gobject_class->set_property = gst_mimi_enc_set_property;
  gobject_class->get_property = gst_mimi_enc_get_property;
  gobject_class->finalize = gst_mimi_enc_finalize;
  gst_mimi_enc_install_properties(gobject_class);

  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_set_static_metadata(
      element_class, "Mimi encoder", "Codec/Encoder/Audio",
      "Encodes mono float audio at the model's rate (24 kHz for Kyutai's Mimi) into Mimi codes "
      "as a live stream: one buffer of num-codebooks little-endian guint16 codes per frame (80 "
      "ms), timestamped with the frame's first sample, one frame of latency. At EOS the last "
      "partial frame is padded with zeros and carries a GstAudioClippingMeta for the padding, "
      "which mimidec drops. FLUSH and DISCONT start a new stream.",
      "gst-moshi developers");
  gst_element_class_add_static_metadata(
      element_class, "example",
      "gst-launch-1.0 filesrc location=speech.wav ! wavparse ! audioconvert ! audioresample ! "
      "mimienc model=kyutai/moshiko-pytorch-bf16 num-codebooks=8 ! "
      "filesink location=speech.mimi");

  encoder_class->start = GST_DEBUG_FUNCPTR(gst_mimi_enc_start);
  encoder_class->stop = GST_DEBUG_FUNCPTR(gst_mimi_enc_stop);
  encoder_class->set_format = GST_DEBUG_FUNCPTR(gst_mimi_enc_set_format);
  encoder_class->handle_frame = GST_DEBUG_FUNCPTR(gst_mimi_enc_handle_frame);
  encoder_class->sink_event = GST_DEBUG_FUNCPTR(gst_mimi_enc_sink_event);
  encoder_class->getcaps = GST_DEBUG_FUNCPTR(gst_mimi_enc_getcaps);

  GST_DEBUG_CATEGORY_INIT(gst_mimi_enc_debug, "mimienc", 0, "Mimi encoder");
}
