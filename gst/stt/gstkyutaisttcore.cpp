/**
 * SECTION:element-kyutaisttcore
 * @title: kyutaisttcore
 * @see_also: kyutaistt, mimienc
 *
 * Kyutai's streaming speech-to-text ("delayed streams modeling", kyutai/stt-1b-en_fr,
 * kyutai/stt-2.6b-en) on mono float audio at Mimi's rate (24 kHz for Kyutai's models): each
 * 80 ms frame goes through the Mimi encoder and one step of the model. Out come the words, one
 * buffer each (text/x-raw, format=utf8), timestamped with the word's start and lasting until
 * its end, in the input's time line; GAP events fill the time between words. `kyutaistt` puts
 * audioconvert and audioresample in front of it and is what pipelines normally use.
 *
 * The text lags the audio by the model's delay (0.5 s for the 1B model), and a frame must be
 * complete before it is stepped: the LATENCY query adds the delay plus one frame to upstream's,
 * and #GstKyutaiSttCore:latency reads it back. Before the first audio frame of a stream the
 * element steps the silence the model expects (stt_config's audio_silence_prefix_seconds); at
 * EOS it steps the delay's worth of silence so that the last words come out, then pushes them
 * and the EOS. A GAP in the input, or a jump in the timestamps, up to 5 s is stepped as
 * silence; a longer one ends the stream there (as EOS does, without the EOS) and the next
 * audio begins a new one. FLUSH and a new stream-start forget the stream.
 *
 * End of turn: once words have come since the last end of turn, a step whose voice-activity
 * head #GstKyutaiSttCore:vad-head gives a probability of no voice above
 * #GstKyutaiSttCore:vad-threshold posts an element message "kyutai-stt-end-of-turn" and pushes
 * a custom downstream event of the same name, after the words before it, both with the fields
 * running-time (guint64) and p-0-5s, p-1s, p-2s, p-3s (gdouble). Models without the heads
 * (kyutai/stt-2.6b-en) never end a turn.
 *
 * ## Example pipeline
 * |[
 * gst-launch-1.0 autoaudiosrc ! audioconvert ! audioresample ! \
 *     kyutaisttcore model=kyutai/stt-1b-en_fr ! fdsink fd=1
 * ]|
 */
#include "gstkyutaisttcore.h"

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "gstkyutaiload.h"
#include "gstkyutaisttrun.h"
#include "gstkyutaisttturn.h"
#include "kyutai/error.h"
#include "kyutai/stt.h"

GST_DEBUG_CATEGORY_STATIC(gst_kyutai_stt_core_debug);
#define GST_CAT_DEFAULT gst_kyutai_stt_core_debug

#define DEFAULT_VAD_THRESHOLD 0.5
#define DEFAULT_VAD_HEAD 2  // the 2 s head, as Kyutai's examples use
#define DEFAULT_BATCH TRUE
static const kyutai::BatchOptions kDefaultBatch;

enum {
  PROP_0,
  PROP_MODEL,  // then the other settings: GST_KYUTAI_N_PROPS ids in all
  PROP_VAD_THRESHOLD = PROP_MODEL + GST_KYUTAI_N_PROPS,
  PROP_VAD_HEAD,
  PROP_BATCH,
  PROP_KV_INT8,
  PROP_LATENCY,
};

// C++ state, new-ed in _init and deleted in _finalize.
struct GstKyutaiSttCorePrivate {
  // Loaded in READY->PAUSED and released in PAUSED->READY (state-change lock).
  std::shared_ptr<const kyutai::Mimi> mimi;
  std::shared_ptr<const kyutai::Stt> stt;
  std::unique_ptr<GstKyutaiSttRun> run;

  // Stream lock of the sink pad.
  GstSegment segment;
  GstClockTime origin = GST_CLOCK_TIME_NONE;  // the first sample of the stream's audio
  GstClockTime resume = GST_CLOCK_TIME_NONE;  // where audio without timestamps goes on
  GstClockTime next_gap = GST_CLOCK_TIME_NONE;  // the end of the last word or GAP pushed
  uint64_t samples_in = 0;                      // samples of the stream's audio, gaps included
  bool discont = true;
  GstFlowReturn flow = GST_FLOW_OK;  // of the last push of a step
  GstKyutaiSttTurn turn;
  double vad_threshold = DEFAULT_VAD_THRESHOLD;  // copied at each buffer
  int vad_head = DEFAULT_VAD_HEAD;
};

struct _GstKyutaiSttCore {
  GstElement parent;
  GstPad* sinkpad;
  GstPad* srcpad;

  // Properties, under the object lock.
  GstKyutaiSettings settings;
  gdouble vad_threshold;
  gint vad_head;
  gboolean batch;
  gboolean kv_int8;
  // What queries from any thread need, under the object lock: the model's rate and the
  // latency it adds while started (0 and GST_CLOCK_TIME_NONE otherwise).
  gint model_rate;
  GstClockTime latency;

  GstKyutaiSttCorePrivate* priv;
};

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE(
    "sink", GST_PAD_SINK, GST_PAD_ALWAYS,
    GST_STATIC_CAPS("audio/x-raw, format = (string) F32LE, layout = (string) interleaved, "
                    "rate = (int) [ 1, MAX ], channels = (int) 1"));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE(
    "src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS("text/x-raw, format = (string) utf8"));

#define gst_kyutai_stt_core_parent_class parent_class
G_DEFINE_TYPE(GstKyutaiSttCore, gst_kyutai_stt_core, GST_TYPE_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE(kyutaisttcore, "kyutaisttcore", GST_RANK_NONE,
                            GST_TYPE_KYUTAI_STT_CORE);

// ---------------------------------------------------------------------------------------------
// Properties

static void gst_kyutai_stt_core_set_property(GObject* object, guint prop_id, const GValue* value,
                                             GParamSpec* pspec) {
  GstKyutaiSttCore* self = GST_KYUTAI_STT_CORE(object);
  if (gst_kyutai_settings_set_property(GST_ELEMENT(self), &self->settings, prop_id - PROP_MODEL,
                                       value))
    return;
  GstObjectLocker lock(self);
  switch (prop_id) {
    case PROP_VAD_THRESHOLD:
      self->vad_threshold = g_value_get_double(value);
      break;
    case PROP_VAD_HEAD:
      self->vad_head = g_value_get_int(value);
      break;
    case PROP_BATCH:
      self->batch = g_value_get_boolean(value);
      break;
    case PROP_KV_INT8:
      self->kv_int8 = g_value_get_boolean(value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
  }
}

static void gst_kyutai_stt_core_get_property(GObject* object, guint prop_id, GValue* value,
                                             GParamSpec* pspec) {
  GstKyutaiSttCore* self = GST_KYUTAI_STT_CORE(object);
  if (gst_kyutai_settings_get_property(GST_ELEMENT(self), &self->settings, prop_id - PROP_MODEL,
                                       value))
    return;
  GstObjectLocker lock(self);
  switch (prop_id) {
    case PROP_VAD_THRESHOLD:
      g_value_set_double(value, self->vad_threshold);
      break;
    case PROP_VAD_HEAD:
      g_value_set_int(value, self->vad_head);
      break;
    case PROP_BATCH:
      g_value_set_boolean(value, self->batch);
      break;
    case PROP_KV_INT8:
      g_value_set_boolean(value, self->kv_int8);
      break;
    case PROP_LATENCY:
      g_value_set_uint(value, GST_CLOCK_TIME_IS_VALID(self->latency)
                                  ? static_cast<guint>(self->latency / GST_MSECOND)
                                  : 0);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
  }
}

// ---------------------------------------------------------------------------------------------
// Output

static GstClockTime gst_kyutai_stt_core_samples_time(GstKyutaiSttCore* self, uint64_t samples) {
  return gst_util_uint64_scale_int(samples, GST_SECOND, self->priv->mimi->format().sample_rate);
}

// A time of the user's audio, in seconds from its first sample, on the input's time line.
static GstClockTime gst_kyutai_stt_core_at(GstKyutaiSttCore* self, double seconds) {
  const double ns = std::max(0.0, std::round(seconds * GST_SECOND));
  return self->priv->origin + static_cast<GstClockTime>(ns);
}

// A GAP from the end of the last word or GAP up to `until`, when there is time between.
static void gst_kyutai_stt_core_gap_to(GstKyutaiSttCore* self, GstClockTime until) {
  GstKyutaiSttCorePrivate* priv = self->priv;
  if (!GST_CLOCK_TIME_IS_VALID(priv->next_gap) || until <= priv->next_gap) return;
  gst_pad_push_event(self->srcpad, gst_event_new_gap(priv->next_gap, until - priv->next_gap));
  priv->next_gap = until;
}

static GstFlowReturn gst_kyutai_stt_core_push_word(GstKyutaiSttCore* self,
                                                   const kyutai::SttWord& word) {
  GstKyutaiSttCorePrivate* priv = self->priv;
  const GstClockTime start = gst_kyutai_stt_core_at(self, word.start_s);
  const GstClockTime end = std::max(start, gst_kyutai_stt_core_at(self, word.end_s));
  gst_kyutai_stt_core_gap_to(self, start);
  GstBuffer* buffer = gst_buffer_new_memdup(word.text.data(), word.text.size());
  GST_BUFFER_PTS(buffer) = start;
  GST_BUFFER_DURATION(buffer) = end - start;
  if (priv->discont) GST_BUFFER_FLAG_SET(buffer, GST_BUFFER_FLAG_DISCONT);
  priv->discont = false;
  priv->next_gap = std::max(priv->next_gap, end);
  priv->turn.word();
  GST_LOG_OBJECT(self, "word '%s' at %" GST_TIME_FORMAT, word.text.c_str(), GST_TIME_ARGS(start));
  return gst_pad_push(self->srcpad, buffer);
}

// The end of the user's turn, at `audio_samples` into the stream: a message and an event.
static void gst_kyutai_stt_core_end_turn(GstKyutaiSttCore* self, const std::vector<float>& vad,
                                         uint64_t audio_samples) {
  GstKyutaiSttCorePrivate* priv = self->priv;
  const GstClockTime at = priv->origin + gst_kyutai_stt_core_samples_time(self, audio_samples);
  const GstClockTime running_time =
      gst_segment_to_running_time(&priv->segment, GST_FORMAT_TIME, at);
  GST_DEBUG_OBJECT(self, "end of turn at %" GST_TIME_FORMAT, GST_TIME_ARGS(running_time));
  GstStructure* s = gst_kyutai_stt_end_of_turn_new(running_time, vad);
  gst_element_post_message(GST_ELEMENT(self),
                           gst_message_new_element(GST_OBJECT(self), gst_structure_copy(s)));
  gst_pad_push_event(self->srcpad, gst_event_new_custom(GST_EVENT_CUSTOM_DOWNSTREAM, s));
}

// What one step made: its words, then perhaps the end of the turn. False once a push failed.
static bool gst_kyutai_stt_core_on_step(GstKyutaiSttCore* self,
                                        const kyutai::SttStream::Step& step,
                                        uint64_t audio_samples) {
  GstKyutaiSttCorePrivate* priv = self->priv;
  for (const kyutai::SttWord& word : step.words) {
    priv->flow = gst_kyutai_stt_core_push_word(self, word);
    if (priv->flow != GST_FLOW_OK) return false;
  }
  if (priv->turn.step(step.vad, priv->vad_head, priv->vad_threshold))
    gst_kyutai_stt_core_end_turn(self, step.vad, audio_samples);
  return true;
}

static GstKyutaiSttRun::OnStep gst_kyutai_stt_core_step_function(GstKyutaiSttCore* self) {
  return [self](const kyutai::SttStream::Step& step, uint64_t audio_samples) {
    return gst_kyutai_stt_core_on_step(self, step, audio_samples);
  };
}

// ---------------------------------------------------------------------------------------------
// Streams

// Runs `body` on the stream, turning a library error into STREAM/DECODE.
template <typename Body>
static GstFlowReturn gst_kyutai_stt_core_run(GstKyutaiSttCore* self, Body&& body) {
  GstKyutaiSttCorePrivate* priv = self->priv;
  priv->flow = GST_FLOW_OK;
  if (!GST_KYUTAI_TRY(GST_ELEMENT(self), STREAM, DECODE,
                      "Kyutai STT could not transcribe a frame of audio.", body))
    return GST_FLOW_ERROR;
  return priv->flow;
}

// Forgets the stream (stream lock held, or not streaming).
static void gst_kyutai_stt_core_forget(GstKyutaiSttCore* self) {
  GstKyutaiSttCorePrivate* priv = self->priv;
  if (priv->run) priv->run->reset();
  priv->origin = GST_CLOCK_TIME_NONE;
  priv->resume = GST_CLOCK_TIME_NONE;
  priv->next_gap = GST_CLOCK_TIME_NONE;
  priv->samples_in = 0;
  priv->discont = true;
  priv->turn.reset();
}

// Ends the stream: the delay's silence, the last words, and a GAP up to the end of the audio.
// The next audio begins a new stream where this one ended.
static GstFlowReturn gst_kyutai_stt_core_drain(GstKyutaiSttCore* self) {
  GstKyutaiSttCorePrivate* priv = self->priv;
  if (!priv->run || !priv->run->started()) return GST_FLOW_OK;
  std::vector<kyutai::SttWord> words;
  GstFlowReturn ret = gst_kyutai_stt_core_run(
      self, [&] { words = priv->run->drain(gst_kyutai_stt_core_step_function(self)); });
  for (size_t i = 0; i < words.size() && ret == GST_FLOW_OK; ++i)
    ret = gst_kyutai_stt_core_push_word(self, words[i]);
  const GstClockTime end = priv->origin + gst_kyutai_stt_core_samples_time(self, priv->samples_in);
  if (ret == GST_FLOW_OK) gst_kyutai_stt_core_gap_to(self, end);
  GST_DEBUG_OBJECT(self, "drained at %" GST_TIME_FORMAT ", %zu last words", GST_TIME_ARGS(end),
                   words.size());
  const GstClockTime next_gap = priv->next_gap;
  gst_kyutai_stt_core_forget(self);
  priv->resume = end;
  priv->next_gap = next_gap;
  return ret;
}

// Silence up to `until` (a GAP, or the timestamp of a buffer after a hole): stepped when short,
// the end of the stream when longer than GST_KYUTAI_MAX_GAP_FILL.
static GstFlowReturn gst_kyutai_stt_core_fill(GstKyutaiSttCore* self, GstClockTime until) {
  GstKyutaiSttCorePrivate* priv = self->priv;
  if (!GST_CLOCK_TIME_IS_VALID(priv->origin)) return GST_FLOW_OK;
  const GstClockTime now = priv->origin + gst_kyutai_stt_core_samples_time(self, priv->samples_in);
  if (until <= now) return GST_FLOW_OK;
  if (until - now > GST_KYUTAI_MAX_GAP_FILL) {
    GST_DEBUG_OBJECT(self, "a hole of %" GST_TIME_FORMAT ": the stream ends",
                     GST_TIME_ARGS(until - now));
    return gst_kyutai_stt_core_drain(self);
  }
  const uint64_t samples =
      gst_util_uint64_scale_int(until - now, priv->mimi->format().sample_rate, GST_SECOND);
  priv->samples_in += samples;
  return gst_kyutai_stt_core_run(self, [&] {
    priv->run->push_silence(samples, gst_kyutai_stt_core_step_function(self));
  });
}

// Where the stream's audio starts, or a hole before `pts` to fill.
static GstFlowReturn gst_kyutai_stt_core_place(GstKyutaiSttCore* self, GstClockTime pts) {
  GstKyutaiSttCorePrivate* priv = self->priv;
  if (GST_CLOCK_TIME_IS_VALID(priv->origin)) {
    const GstClockTime frame =
        gst_kyutai_stt_core_samples_time(self, priv->mimi->format().frame_size);
    const GstClockTime now =
        priv->origin + gst_kyutai_stt_core_samples_time(self, priv->samples_in);
    if (!GST_CLOCK_TIME_IS_VALID(pts) || pts <= now + frame) return GST_FLOW_OK;
    GstFlowReturn ret = gst_kyutai_stt_core_fill(self, pts);
    if (ret != GST_FLOW_OK || GST_CLOCK_TIME_IS_VALID(priv->origin)) return ret;
  }
  if (!GST_CLOCK_TIME_IS_VALID(pts))
    pts = GST_CLOCK_TIME_IS_VALID(priv->resume) ? priv->resume : priv->segment.start;
  priv->origin = pts;
  if (!GST_CLOCK_TIME_IS_VALID(priv->next_gap)) priv->next_gap = pts;
  GST_DEBUG_OBJECT(self, "stream starts at %" GST_TIME_FORMAT, GST_TIME_ARGS(pts));
  return GST_FLOW_OK;
}

static void gst_kyutai_stt_core_copy_vad(GstKyutaiSttCore* self) {
  GstObjectLocker lock(self);
  self->priv->vad_threshold = self->vad_threshold;
  self->priv->vad_head = self->vad_head;
}

static GstFlowReturn gst_kyutai_stt_core_chain(GstPad* /*pad*/, GstObject* parent,
                                               GstBuffer* buffer) {
  GstKyutaiSttCore* self = GST_KYUTAI_STT_CORE(parent);
  GstKyutaiSttCorePrivate* priv = self->priv;
  g_autoptr(GstBuffer) owned = buffer;
  if (!gst_pad_has_current_caps(self->sinkpad)) {
    GST_ELEMENT_ERROR(self, CORE, NEGOTIATION, ("No caps before the first buffer."), (nullptr));
    return GST_FLOW_NOT_NEGOTIATED;
  }
  gst_kyutai_stt_core_copy_vad(self);
  GstFlowReturn ret = gst_kyutai_stt_core_place(self, GST_BUFFER_PTS(buffer));
  if (ret != GST_FLOW_OK) return ret;
  GstMapInfo map;
  if (!gst_buffer_map(buffer, &map, GST_MAP_READ)) return GST_FLOW_ERROR;
  const size_t count = map.size / sizeof(float);
  priv->samples_in += count;
  ret = gst_kyutai_stt_core_run(self, [&] {
    priv->run->push(reinterpret_cast<const float*>(map.data), count,
                    gst_kyutai_stt_core_step_function(self));
  });
  gst_buffer_unmap(buffer, &map);
  return ret;
}

// ---------------------------------------------------------------------------------------------
// Events

static gboolean gst_kyutai_stt_core_set_caps(GstKyutaiSttCore* self, GstCaps* caps) {
  const GstStructure* s = gst_caps_get_structure(caps, 0);
  const int rate = self->priv->mimi->format().sample_rate;
  int got = 0;
  if (!gst_structure_get_int(s, "rate", &got) || got != rate) {
    g_autofree gchar* text = gst_caps_to_string(caps);
    GST_ELEMENT_ERROR(self, STREAM, FORMAT,
                      ("Kyutai STT needs mono audio at %d Hz; resample it first (audioresample), "
                       "or use kyutaistt.",
                       rate),
                      ("caps %s", text));
    return FALSE;
  }
  g_autoptr(GstCaps) text = gst_static_pad_template_get_caps(&src_template);
  return gst_pad_set_caps(self->srcpad, text);
}

static gboolean gst_kyutai_stt_core_gap(GstKyutaiSttCore* self, GstEvent* event) {
  GstClockTime ts, duration;
  gst_event_parse_gap(event, &ts, &duration);
  gst_event_unref(event);
  if (!GST_CLOCK_TIME_IS_VALID(ts)) return TRUE;
  const GstClockTime end = GST_CLOCK_TIME_IS_VALID(duration) ? ts + duration : ts;
  if (!GST_CLOCK_TIME_IS_VALID(self->priv->origin)) {  // no audio yet: nothing to wait for
    if (!GST_CLOCK_TIME_IS_VALID(self->priv->next_gap)) self->priv->next_gap = ts;
    gst_kyutai_stt_core_gap_to(self, end);
    return TRUE;
  }
  return gst_kyutai_stt_core_fill(self, end) == GST_FLOW_OK;
}

static gboolean gst_kyutai_stt_core_sink_event(GstPad* pad, GstObject* parent, GstEvent* event) {
  GstKyutaiSttCore* self = GST_KYUTAI_STT_CORE(parent);
  GstKyutaiSttCorePrivate* priv = self->priv;
  switch (GST_EVENT_TYPE(event)) {
    case GST_EVENT_STREAM_START:
    case GST_EVENT_FLUSH_STOP:
      gst_kyutai_stt_core_forget(self);
      break;
    case GST_EVENT_CAPS: {
      GstCaps* caps;
      gst_event_parse_caps(event, &caps);
      const gboolean ok = gst_kyutai_stt_core_set_caps(self, caps);
      gst_event_unref(event);
      return ok;
    }
    case GST_EVENT_SEGMENT:
      gst_event_copy_segment(event, &priv->segment);
      break;
    case GST_EVENT_GAP:
      return gst_kyutai_stt_core_gap(self, event);
    case GST_EVENT_EOS:
      gst_kyutai_stt_core_copy_vad(self);
      gst_kyutai_stt_core_drain(self);
      break;
    default:
      break;
  }
  return gst_pad_event_default(pad, parent, event);
}

// ---------------------------------------------------------------------------------------------
// Queries

// Upstream's latency plus the model's delay and one frame (published at start).
static gboolean gst_kyutai_stt_core_latency(GstKyutaiSttCore* self, GstQuery* query) {
  if (!gst_pad_peer_query(self->sinkpad, query)) return FALSE;
  gboolean live;
  GstClockTime min, max;
  gst_query_parse_latency(query, &live, &min, &max);
  const GstClockTime ours = gst_kyutai_locked(self, [&] { return self->latency; });
  if (GST_CLOCK_TIME_IS_VALID(ours)) {
    min += ours;
    if (GST_CLOCK_TIME_IS_VALID(max)) max += ours;
  }
  GST_DEBUG_OBJECT(self, "latency: live %d, min %" GST_TIME_FORMAT ", max %" GST_TIME_FORMAT, live,
                   GST_TIME_ARGS(min), GST_TIME_ARGS(max));
  gst_query_set_latency(query, live, min, max);
  return TRUE;
}

static gboolean gst_kyutai_stt_core_src_query(GstPad* pad, GstObject* parent, GstQuery* query) {
  GstKyutaiSttCore* self = GST_KYUTAI_STT_CORE(parent);
  if (GST_QUERY_TYPE(query) == GST_QUERY_LATENCY) return gst_kyutai_stt_core_latency(self, query);
  return gst_pad_query_default(pad, parent, query);
}

// Offers the model's rate upstream once it is loaded.
static gboolean gst_kyutai_stt_core_sink_query(GstPad* pad, GstObject* parent, GstQuery* query) {
  GstKyutaiSttCore* self = GST_KYUTAI_STT_CORE(parent);
  if (GST_QUERY_TYPE(query) != GST_QUERY_CAPS) return gst_pad_query_default(pad, parent, query);
  GstCaps* filter;
  gst_query_parse_caps(query, &filter);
  GstCaps* caps = gst_static_pad_template_get_caps(&sink_template);
  const int rate = gst_kyutai_locked(self, [&] { return self->model_rate; });
  if (rate > 0) {
    caps = gst_caps_make_writable(caps);
    gst_caps_set_simple(caps, "rate", G_TYPE_INT, rate, nullptr);
  }
  if (filter) {
    GstCaps* both = gst_caps_intersect_full(filter, caps, GST_CAPS_INTERSECT_FIRST);
    gst_caps_unref(caps);
    caps = both;
  }
  gst_query_set_caps_result(query, caps);
  gst_caps_unref(caps);
  return TRUE;
}

// ---------------------------------------------------------------------------------------------
// State changes

static std::shared_ptr<const kyutai::Stt> gst_kyutai_stt_core_load(GstKyutaiSttCore* self,
                                                                   const GstKyutaiConfig& config,
                                                                   kyutai::MoshiFiles* files) {
  return gst_kyutai_load_lm(
      GST_ELEMENT(self), config, "Kyutai STT",
      [&](const kyutai::MoshiFiles& found, const kyutai::WeightCacheOptions& cache,
          const kyutai::LoadProgress& progress) {
        return kyutai::Stt::load_shared(found, config.device, config.weights, cache, progress);
      },
      files);
}

// The Mimi model of the STT repository, and the stream that runs both.
static bool gst_kyutai_stt_core_open(GstKyutaiSttCore* self, const kyutai::MoshiFiles& files,
                                     const std::string& device) {
  GstKyutaiSttCorePrivate* priv = self->priv;
  GstKyutaiLoadProgress progress(GST_ELEMENT(self), "Mimi", files.mimi.weights);
  if (files.mimi.weights.empty()) {
    GST_KYUTAI_POST_ERROR(GST_ELEMENT(self), RESOURCE, NOT_FOUND,
                          "The Kyutai STT model has no Mimi model beside it.",
                          "no Mimi weights in " + files.dir);
    return false;
  }
  priv->mimi = gst_kyutai_load_mimi(GST_ELEMENT(self), files.mimi, device, progress);
  if (!priv->mimi) return false;
  const kyutai::BatchOptions batch{
      gst_kyutai_locked(self, [&] { return self->batch != FALSE; }), kDefaultBatch.max_wait_ms};
  const auto kv = gst_kyutai_locked(self, [&] {
    return self->kv_int8 ? kyutai::KvCacheFormat::Int8 : kyutai::KvCacheFormat::Model;
  });
  return GST_KYUTAI_TRY(
      GST_ELEMENT(self), LIBRARY, INIT,
      "Cannot start a Kyutai STT stream with this Mimi model and these settings.",
      [&] { priv->run = std::make_unique<GstKyutaiSttRun>(priv->mimi, priv->stt, batch, kv); });
}

// The latency the element adds: the model's delay, one frame, and, batched, the wait for the
// other streams (the Mimi encode runs inside the batched step: one wait).
static void gst_kyutai_stt_core_publish(GstKyutaiSttCore* self) {
  GstKyutaiSttCorePrivate* priv = self->priv;
  const kyutai::SttFormat& f = priv->stt->format();
  const GstClockTime frame = gst_kyutai_stt_core_samples_time(self, priv->mimi->format().frame_size);
  GstObjectLocker lock(self);
  self->model_rate = priv->mimi->format().sample_rate;
  self->latency =
      frame * (f.delay_frames + 1) +
      (self->batch ? static_cast<GstClockTime>(kDefaultBatch.max_wait_ms * GST_MSECOND) : 0);
}

static gboolean gst_kyutai_stt_core_start(GstKyutaiSttCore* self) {
  GstKyutaiSttCorePrivate* priv = self->priv;
  const GstKyutaiConfig config = gst_kyutai_settings_copy(GST_ELEMENT(self), &self->settings);
  kyutai::MoshiFiles files;
  priv->stt = gst_kyutai_stt_core_load(self, config, &files);
  if (!priv->stt || !gst_kyutai_stt_core_open(self, files, config.device)) {
    priv->stt.reset();
    priv->mimi.reset();
    return FALSE;
  }
  gst_kyutai_settings_set_resolved(GST_ELEMENT(self), &self->settings,
                                   priv->stt->weight_format());
  const kyutai::SttFormat& f = priv->stt->format();
  GST_INFO_OBJECT(self, "model %s: %d codebooks, delay %d frames, %d frames of silence first",
                  config.model.c_str(), f.codebooks, f.delay_frames, f.silence_prefix_frames);
  gst_segment_init(&priv->segment, GST_FORMAT_TIME);
  gst_kyutai_stt_core_forget(self);
  gst_kyutai_stt_core_publish(self);
  return TRUE;
}

static void gst_kyutai_stt_core_stop(GstKyutaiSttCore* self) {
  gst_kyutai_locked(self, [&] {
    self->model_rate = 0;
    self->latency = GST_CLOCK_TIME_NONE;
  });
  self->priv->run.reset();  // leaves the batch
  self->priv->stt.reset();
  self->priv->mimi.reset();
  gst_kyutai_settings_set_resolved(GST_ELEMENT(self), &self->settings,
                                   kyutai::WeightFormat::Auto);
}

static GstStateChangeReturn gst_kyutai_stt_core_change_state(GstElement* element,
                                                             GstStateChange transition) {
  GstKyutaiSttCore* self = GST_KYUTAI_STT_CORE(element);
  if (transition == GST_STATE_CHANGE_READY_TO_PAUSED && !gst_kyutai_stt_core_start(self))
    return GST_STATE_CHANGE_FAILURE;
  const GstStateChangeReturn ret =
      GST_ELEMENT_CLASS(parent_class)->change_state(element, transition);
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY) gst_kyutai_stt_core_stop(self);
  return ret;
}

// ---------------------------------------------------------------------------------------------
// GObject

static void gst_kyutai_stt_core_init(GstKyutaiSttCore* self) {
  self->priv = new GstKyutaiSttCorePrivate();
  gst_kyutai_settings_init(&self->settings, TRUE, GST_KYUTAI_DEFAULT_STT_MODEL);
  self->vad_threshold = DEFAULT_VAD_THRESHOLD;
  self->vad_head = DEFAULT_VAD_HEAD;
  self->batch = DEFAULT_BATCH;
  self->kv_int8 = FALSE;
  self->latency = GST_CLOCK_TIME_NONE;
  gst_segment_init(&self->priv->segment, GST_FORMAT_TIME);

  self->sinkpad = gst_pad_new_from_static_template(&sink_template, "sink");
  gst_pad_set_chain_function(self->sinkpad, GST_DEBUG_FUNCPTR(gst_kyutai_stt_core_chain));
  gst_pad_set_event_function(self->sinkpad, GST_DEBUG_FUNCPTR(gst_kyutai_stt_core_sink_event));
  gst_pad_set_query_function(self->sinkpad, GST_DEBUG_FUNCPTR(gst_kyutai_stt_core_sink_query));
  GST_PAD_SET_ACCEPT_TEMPLATE(self->sinkpad);
  gst_element_add_pad(GST_ELEMENT(self), self->sinkpad);
  self->srcpad = gst_pad_new_from_static_template(&src_template, "src");
  gst_pad_set_query_function(self->srcpad, GST_DEBUG_FUNCPTR(gst_kyutai_stt_core_src_query));
  gst_pad_use_fixed_caps(self->srcpad);
  gst_element_add_pad(GST_ELEMENT(self), self->srcpad);
}

static void gst_kyutai_stt_core_finalize(GObject* object) {
  GstKyutaiSttCore* self = GST_KYUTAI_STT_CORE(object);
  delete self->priv;
  self->priv = nullptr;
  gst_kyutai_settings_clear(&self->settings);
  G_OBJECT_CLASS(parent_class)->finalize(object);
}

static void gst_kyutai_stt_core_install_properties(GObjectClass* klass) {
  gst_kyutai_install_settings(
      klass, PROP_MODEL,
      "Kyutai STT as its repositories lay it out: a directory whose config.json (model_type "
      "stt) names the weights, the tokenizer and Mimi, that config.json, or a Hugging Face "
      "repository id such as kyutai/stt-1b-en_fr, looked up in the local Hugging Face cache "
      "($HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub; snapshot of "
      "refs/main) and never downloaded. Loaded when going from READY to PAUSED",
      TRUE, GST_KYUTAI_DEFAULT_STT_MODEL);
  const auto playing = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                                                GST_PARAM_MUTABLE_PLAYING);
  g_object_class_install_property(
      klass, PROP_VAD_THRESHOLD,
      g_param_spec_double("vad-threshold", "End-of-turn threshold",
                          "The user's turn ends when, after words, the chosen voice-activity "
                          "head's probability of no voice rises above this; 1 never ends a "
                          "turn. Can change while playing",
                          0.0, 1.0, DEFAULT_VAD_THRESHOLD, playing));
  g_object_class_install_property(
      klass, PROP_VAD_HEAD,
      g_param_spec_int("vad-head", "End-of-turn head",
                       "The voice-activity head that ends turns, by the silence it predicts: "
                       "0 for the next 0.5 s, 1 for 1 s, 2 for 2 s, 3 for 3 s. Can change while "
                       "playing",
                       0, GST_KYUTAI_STT_VAD_HEADS - 1, DEFAULT_VAD_HEAD, playing));
  g_object_class_install_property(
      klass, PROP_BATCH,
      g_param_spec_boolean("batch", "Batch",
                           "Encode and step together with the other streams of this process on "
                           "the same model: the weights are read once for all, each stream's "
                           "words are the same as alone (the encode to float rounding), and a "
                           "frame may wait up to 5 ms for the others (added to the latency). "
                           "Applies from the next start",
                           DEFAULT_BATCH,
                           static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                                                    GST_PARAM_MUTABLE_READY)));
  g_object_class_install_property(
      klass, PROP_KV_INT8,
      g_param_spec_boolean("kv-int8", "Int8 KV cache",
                           "Keep the stream's attention cache in int8 with a scale per head and "
                           "position: half the bytes of bfloat16 that a long context reads at "
                           "every step, for a small error on the logits (docs/QUANTIZATION.md). "
                           "CPU only. Applies from the next start",
                           FALSE,
                           static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                                                    GST_PARAM_MUTABLE_READY)));
  g_object_class_install_property(
      klass, PROP_LATENCY,
      g_param_spec_uint("latency", "Latency",
                        "What the element adds to the pipeline's latency, in milliseconds: the "
                        "model's delay plus one frame (plus the batch waits); 0 until the model "
                        "is loaded",
                        0, G_MAXUINT, 0,
                        static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));
}

static void gst_kyutai_stt_core_class_init(GstKyutaiSttCoreClass* klass) {
  GObjectClass* gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass* element_class = GST_ELEMENT_CLASS(klass);
  gobject_class->set_property = gst_kyutai_stt_core_set_property;
  gobject_class->get_property = gst_kyutai_stt_core_get_property;
  gobject_class->finalize = gst_kyutai_stt_core_finalize;
  gst_kyutai_stt_core_install_properties(gobject_class);
  element_class->change_state = GST_DEBUG_FUNCPTR(gst_kyutai_stt_core_change_state);

  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_set_static_metadata(
      element_class, "Kyutai STT on Mimi-rate audio", "Filter/Audio/Text",
      "Kyutai's streaming speech-to-text on mono float audio at Mimi's rate: one buffer per "
      "word with its start and duration, GAP events between words, latency of the model's "
      "delay plus one frame, and an element message and custom event at the end of the user's "
      "turn. kyutaistt takes any audio.",
      "gst-moshi developers");
  gst_element_class_add_static_metadata(
      element_class, "example",
      "gst-launch-1.0 autoaudiosrc ! audioconvert ! audioresample ! kyutaisttcore "
      "model=kyutai/stt-1b-en_fr ! fdsink fd=1");
  GST_DEBUG_CATEGORY_INIT(gst_kyutai_stt_core_debug, "kyutaisttcore", 0,
                          "Kyutai speech-to-text");
}
