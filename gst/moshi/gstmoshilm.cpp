/**
 * SECTION:element-moshilm
 * @title: moshilm
 * @see_also: mimienc, mimidec, moshibin
 *
 * Kyutai's Moshi, a full-duplex speech dialogue model, as a filter on Mimi codes. Each buffer of
 * the user's voice (audio/x-mimi, one 80 ms frame) makes one step of the model, which answers
 * with one frame of Moshi's voice on `src` and, on `text_src`, the pieces of its
 * inner-monologue text as they are generated. Output timestamps are the input's: one output
 * frame per input frame. During the first steps, while the model's delayed streams fill, there
 * is no output yet and GAP events keep the time line continuous.
 *
 * Whose turn it is: moshilm posts an element message "moshi-speaking-started" at the first
 * step with text after silence, and "moshi-speaking-stopped" once #GstMoshiLm:speaking-hold
 * steps in a row had padding only (or at EOS), each with the field running-time (guint64).
 *
 * FLUSH and a new stream-start begin a new conversation. Conversations longer than the model's
 * context go on: attention slides over the last `context` steps.
 *
 * The `moshilm` elements of a process that load the same model on the same device in the same
 * weight format step their conversations together (#GstMoshiLm:batch): one pass through the
 * model reads the weights once for all of them, and each conversation still gets exactly the
 * output it would get alone. A step waits at most #GstMoshiLm:batch-wait for the others.
 *
 * When a step takes longer than a frame (the 7B model on most CPUs), output falls behind real
 * time: the element keeps the input timestamps, posts a warning with the measured step time, and
 * reports the real-time factor in #GstMoshiLm:stats. A live sink then drops late buffers; see
 * docs/ELEMENTS.md.
 *
 * ## Example pipeline
 * |[
 * gst-launch-1.0 autoaudiosrc ! audioconvert ! audioresample ! \
 *     mimienc model=kyutai/moshiko-pytorch-bf16 ! \
 *     moshilm model=kyutai/moshiko-pytorch-bf16 name=lm ! queue ! \
 *     mimidec model=kyutai/moshiko-pytorch-bf16 ! audioconvert ! autoaudiosink \
 *     lm.text_src ! queue ! fdsink fd=1
 * ]|
 *
 * `src` is pushed from the input's streaming thread, `text_src` from a thread of its own behind
 * a small queue, so a sink blocking on one output never holds back the other: no queue is
 * needed after moshilm.
 */
#include "gstmoshilm.h"

#include <memory>
#include <string>
#include <vector>

#include <gst/base/gstflowcombiner.h>

#include "gstmoshilmcaps.h"
#include "gstmoshilmprops.h"
#include "gstmoshiload.h"
#include "gstmoshilmstats.h"
#include "gstmoshipadqueue.h"
#include "gstmoshisettings.h"
#include "gstmoshispeaking.h"
#include "kyutai/moshi.h"

GST_DEBUG_CATEGORY_STATIC(gst_moshi_lm_debug);
#define GST_CAT_DEFAULT gst_moshi_lm_debug

// A late step is reported once, then again after this many late steps (10 s of audio).
#define LATE_WARNING_EVERY 125
// Buffers and events waiting for text_src's own thread: 5 s of steps.
#define TEXT_QUEUE_ITEMS 64


// C++ state, new-ed in _init and deleted in _finalize.
struct GstMoshiLmPrivate {
  // Loaded in READY->PAUSED and released in PAUSED->READY (state-change lock). The
  // conversation pointer is also read by the stats property: set under the object lock.
  std::shared_ptr<const kyutai::Moshi> moshi;
  std::unique_ptr<kyutai::MoshiConversation> conversation;
  GstFlowCombiner* combiner = nullptr;
  std::unique_ptr<GstMoshiPadQueue> text;  // text_src's streaming thread; made in _init

  // Stream lock of the sink pad.
  int in_codebooks = 0;  // from the caps
  int rate = 0;
  int frame_size = 0;
  GstClockTime frame_duration = GST_CLOCK_TIME_NONE;
  GstSegment segment;
  GstClockTime next_pts = GST_CLOCK_TIME_NONE;  // for input without timestamps
  bool discont = true;
  guint64 late_steps = 0;
  std::vector<int64_t> codes;
  GstMoshiSpeaking speaking;

  kyutai::StepStats last_stats;  // object lock: the stopped conversation's, for `stats`
};

struct _GstMoshiLm {
  GstElement parent;
  GstPad* sinkpad;
  GstPad* srcpad;
  GstPad* textpad;

  // Properties, under the object lock.
  GstKyutaiSettings settings;
  gdouble temperature;
  gdouble text_temperature;
  gint top_k;
  gint text_top_k;
  gdouble repetition_penalty;
  guint repetition_penalty_context;
  guint64 seed;
  gboolean batch;
  gdouble batch_wait;  // ms
  gboolean kv_int8;
  guint speaking_hold;

  // What queries from any thread need, under the object lock: the model's needs while started
  // (0 otherwise) and the frame duration once the caps are known.
  gint model_user_codebooks;
  gint model_cardinality;
  GstClockTime published_frame;
  GstClockTime published_wait;  // the longest a batched step waits (0 unbatched)

  GstMoshiLmPrivate* priv;
};

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE(
    "sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS(GST_KYUTAI_MIMI_TEMPLATE_CAPS));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE(
    "src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS(GST_KYUTAI_MIMI_TEMPLATE_CAPS));
static GstStaticPadTemplate text_template = GST_STATIC_PAD_TEMPLATE(
    "text_src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS("text/x-raw, format = (string) utf8"));

#define gst_moshi_lm_parent_class parent_class
G_DEFINE_TYPE(GstMoshiLm, gst_moshi_lm, GST_TYPE_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE(moshilm, "moshilm", GST_RANK_NONE, GST_TYPE_MOSHI_LM);

// ---------------------------------------------------------------------------------------------
// Statistics

// The conversation's step statistics, or the last conversation's once stopped (object lock held).
static kyutai::StepStats gst_moshi_lm_step_stats(GstMoshiLm* self) {
  const kyutai::MoshiConversation* c = self->priv->conversation.get();
  return c ? c->stats() : self->priv->last_stats;
}

// ---------------------------------------------------------------------------------------------
// Properties

static void gst_moshi_lm_set_property(GObject* object, guint prop_id, const GValue* value,
                                      GParamSpec* pspec) {
  GstMoshiLm* self = GST_MOSHI_LM(object);
  if (gst_kyutai_settings_set_property(GST_ELEMENT(self), &self->settings, prop_id - PROP_MODEL,
                                       value))
    return;
  GstObjectLocker lock(self);
  switch (prop_id) {
    case PROP_TEMPERATURE:
      self->temperature = g_value_get_double(value);
      break;
    case PROP_TEXT_TEMPERATURE:
      self->text_temperature = g_value_get_double(value);
      break;
    case PROP_TOP_K:
      self->top_k = g_value_get_int(value);
      break;
    case PROP_TEXT_TOP_K:
      self->text_top_k = g_value_get_int(value);
      break;
    case PROP_REPETITION_PENALTY:
      self->repetition_penalty = g_value_get_double(value);
      break;
    case PROP_REPETITION_PENALTY_CONTEXT:
      self->repetition_penalty_context = g_value_get_uint(value);
      break;
    case PROP_SEED:
      self->seed = g_value_get_uint64(value);
      break;
    case PROP_BATCH:
      self->batch = g_value_get_boolean(value);
      break;
    case PROP_BATCH_WAIT:
      self->batch_wait = g_value_get_double(value);
      break;
    case PROP_KV_INT8:
      self->kv_int8 = g_value_get_boolean(value);
      break;
    case PROP_SPEAKING_HOLD:
      self->speaking_hold = g_value_get_uint(value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
  }
}

static void gst_moshi_lm_get_property(GObject* object, guint prop_id, GValue* value,
                                      GParamSpec* pspec) {
  GstMoshiLm* self = GST_MOSHI_LM(object);
  if (gst_kyutai_settings_get_property(GST_ELEMENT(self), &self->settings, prop_id - PROP_MODEL,
                                       value))
    return;
  GstObjectLocker lock(self);
  switch (prop_id) {
    case PROP_TEMPERATURE:
      g_value_set_double(value, self->temperature);
      break;
    case PROP_TEXT_TEMPERATURE:
      g_value_set_double(value, self->text_temperature);
      break;
    case PROP_TOP_K:
      g_value_set_int(value, self->top_k);
      break;
    case PROP_TEXT_TOP_K:
      g_value_set_int(value, self->text_top_k);
      break;
    case PROP_REPETITION_PENALTY:
      g_value_set_double(value, self->repetition_penalty);
      break;
    case PROP_REPETITION_PENALTY_CONTEXT:
      g_value_set_uint(value, self->repetition_penalty_context);
      break;
    case PROP_SEED:
      g_value_set_uint64(value, self->seed);
      break;
    case PROP_BATCH:
      g_value_set_boolean(value, self->batch);
      break;
    case PROP_BATCH_WAIT:
      g_value_set_double(value, self->batch_wait);
      break;
    case PROP_KV_INT8:
      g_value_set_boolean(value, self->kv_int8);
      break;
    case PROP_SPEAKING_HOLD:
      g_value_set_uint(value, self->speaking_hold);
      break;
    case PROP_STATS:
      g_value_take_boxed(value, gst_moshi_lm_stats_structure(gst_moshi_lm_step_stats(self)));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
  }
}

static kyutai::SamplingParams gst_moshi_lm_sampling(GstMoshiLm* self) {
  GstObjectLocker lock(self);
  return kyutai::SamplingParams{self->temperature,
                                self->top_k,
                                self->text_temperature,
                                self->text_top_k,
                                self->repetition_penalty,
                                static_cast<int>(self->repetition_penalty_context)};
}

static void gst_moshi_lm_publish(GstMoshiLm* self, const kyutai::MoshiFormat* format,
                                 GstClockTime frame) {
  GstObjectLocker lock(self);
  self->model_user_codebooks = format ? format->user_codebooks : 0;
  self->model_cardinality = format ? format->cardinality : 0;
  self->published_frame = frame;
  const kyutai::MoshiConversation* c = self->priv->conversation.get();
  self->published_wait =
      c && c->batch_options().enabled
          ? static_cast<GstClockTime>(c->batch_options().max_wait_ms * GST_MSECOND)
          : 0;
}

static guint64 gst_moshi_lm_seed(GstMoshiLm* self) {
  GstObjectLocker lock(self);
  return self->seed;
}

static kyutai::BatchOptions gst_moshi_lm_batch_options(GstMoshiLm* self) {
  GstObjectLocker lock(self);
  return kyutai::BatchOptions{self->batch != FALSE, self->batch_wait};
}

// ---------------------------------------------------------------------------------------------
// Conversations and output

// Starts a new conversation (stream lock held, or not streaming). Returns false after posting
// an error.
static bool gst_moshi_lm_new_conversation(GstMoshiLm* self) {
  GstMoshiLmPrivate* priv = self->priv;
  if (!priv->conversation) return true;
  GST_DEBUG_OBJECT(self, "new conversation");
  priv->discont = true;
  priv->late_steps = 0;
  priv->next_pts = GST_CLOCK_TIME_NONE;
  priv->speaking.reset();
  const guint64 seed = gst_moshi_lm_seed(self);
  return GST_KYUTAI_TRY(GST_ELEMENT(self), STREAM, DECODE, "Cannot start a new Moshi conversation.",
                        [&] { priv->conversation->reset(seed); });
}

static GstFlowReturn gst_moshi_lm_combine(GstMoshiLm* self, GstPad* pad, GstFlowReturn ret) {
  return gst_flow_combiner_update_pad_flow(self->priv->combiner, pad, ret);
}

static void gst_moshi_lm_stamp(GstMoshiLm* self, GstBuffer* buffer, GstClockTime pts) {
  GST_BUFFER_PTS(buffer) = pts;
  GST_BUFFER_DURATION(buffer) = self->priv->frame_duration;
  if (self->priv->discont) GST_BUFFER_FLAG_SET(buffer, GST_BUFFER_FLAG_DISCONT);
}

// Pushes what one step made: its text (or a GAP) and Moshi's frame (or a GAP before it has
// one). The text goes first, to its own thread: a sink prerolling on src then never holds
// back the text a sink on text_src needs to preroll.
static GstFlowReturn gst_moshi_lm_push_step(GstMoshiLm* self,
                                            const kyutai::MoshiConversation::Step& step,
                                            GstClockTime pts) {
  GstMoshiLmPrivate* priv = self->priv;
  GstMiniObject* text;
  if (step.text.empty()) {
    text = GST_MINI_OBJECT(gst_event_new_gap(pts, priv->frame_duration));
  } else {
    GstBuffer* buffer = gst_buffer_new_memdup(step.text.data(), step.text.size());
    gst_moshi_lm_stamp(self, buffer, pts);
    text = GST_MINI_OBJECT(buffer);
  }
  const bool text_queued = priv->text->push(text);
  GstFlowReturn audio_ret = GST_FLOW_OK;
  if (!step.ready) {
    gst_pad_push_event(self->srcpad, gst_event_new_gap(pts, priv->frame_duration));
  } else {
    GstBuffer* frame = gst_kyutai_mimi_pack(step.audio.data(), step.audio.size());
    gst_moshi_lm_stamp(self, frame, pts);
    audio_ret = gst_pad_push(self->srcpad, frame);
  }
  priv->discont = false;
  // The text thread stopped: its pad's last flow return says why.
  if (!text_queued)
    gst_moshi_lm_combine(self, self->textpad, gst_pad_get_last_flow_return(self->textpad));
  return gst_moshi_lm_combine(self, self->srcpad, audio_ret);
}

// Warns when a step takes longer than a frame: output then falls behind real time.
static void gst_moshi_lm_check_late(GstMoshiLm* self, double step_ms) {
  GstMoshiLmPrivate* priv = self->priv;
  const double frame_ms = static_cast<double>(priv->frame_duration) / GST_MSECOND;
  if (step_ms <= frame_ms) return;
  if (priv->late_steps++ % LATE_WARNING_EVERY != 0) return;
  GST_ELEMENT_WARNING(self, CORE, CLOCK,
                      ("Moshi is slower than real time: a step took %.0f ms for a %.0f ms frame "
                       "(%" G_GUINT64_FORMAT " late steps so far). Output falls behind; use a "
                       "faster device or a smaller model.",
                       step_ms, frame_ms, priv->late_steps),
                      ("real-time factor %.2f", step_ms / frame_ms));
}

// Posts moshi-speaking-started / -stopped when Moshi's text starts or stops.
static void gst_moshi_lm_track_speaking(GstMoshiLm* self, bool text, GstClockTime pts) {
  GstMoshiLmPrivate* priv = self->priv;
  const guint hold = gst_kyutai_locked(self, [&] { return self->speaking_hold; });
  const GstClockTime running_time =
      gst_segment_to_running_time(&priv->segment, GST_FORMAT_TIME, pts);
  GstMessage* change =
      priv->speaking.step(GST_OBJECT(self), text, running_time, priv->frame_duration, hold);
  if (change) gst_element_post_message(GST_ELEMENT(self), change);
}

// Reads one frame of user codes, or posts STREAM/DECODE. The library checks the codes' range.
static bool gst_moshi_lm_unpack(GstMoshiLm* self, GstBuffer* buffer) {
  GstMoshiLmPrivate* priv = self->priv;
  const std::string why = gst_kyutai_mimi_unpack(buffer, priv->codes.size(), 0, priv->codes.data());
  if (why.empty()) return true;
  GST_ELEMENT_ERROR(self, STREAM, DECODE, ("%s", why.c_str()),
                    ("buffer at %" GST_TIME_FORMAT, GST_TIME_ARGS(GST_BUFFER_PTS(buffer))));
  return false;
}

static GstFlowReturn gst_moshi_lm_chain(GstPad* /*pad*/, GstObject* parent, GstBuffer* buffer) {
  GstMoshiLm* self = GST_MOSHI_LM(parent);
  GstMoshiLmPrivate* priv = self->priv;
  if (priv->in_codebooks == 0) {
    gst_buffer_unref(buffer);
    GST_ELEMENT_ERROR(self, CORE, NEGOTIATION, ("No caps before the first buffer."), (nullptr));
    return GST_FLOW_NOT_NEGOTIATED;
  }
  if (GST_BUFFER_IS_DISCONT(buffer) && priv->conversation->steps() > 0)
    GST_DEBUG_OBJECT(self, "discontinuity: the conversation goes on");
  GstClockTime pts = GST_BUFFER_PTS(buffer);
  if (!GST_CLOCK_TIME_IS_VALID(pts))
    pts = GST_CLOCK_TIME_IS_VALID(priv->next_pts) ? priv->next_pts : priv->segment.start;
  priv->next_pts = pts + priv->frame_duration;
  const bool ok = gst_moshi_lm_unpack(self, buffer);
  gst_buffer_unref(buffer);
  if (!ok) return GST_FLOW_ERROR;

  kyutai::MoshiConversation::Step step;
  if (!GST_KYUTAI_TRY(GST_ELEMENT(self), STREAM, DECODE,
                      "Moshi could not process a frame of the user's audio.", [&] {
                        step = priv->conversation->step(priv->codes.data(), priv->in_codebooks,
                                                        gst_moshi_lm_sampling(self));
                      }))
    return GST_FLOW_ERROR;
  gst_moshi_lm_check_late(self, step.wait_ms + step.step_ms);  // the library's step time
  gst_moshi_lm_track_speaking(self, !step.text.empty(), pts);
  return gst_moshi_lm_push_step(self, step, pts);
}

// ---------------------------------------------------------------------------------------------
// Events

static gboolean gst_moshi_lm_set_caps(GstMoshiLm* self, GstCaps* caps) {
  GstMoshiLmPrivate* priv = self->priv;
  const GstStructure* s = gst_caps_get_structure(caps, 0);
  const std::string why = gst_moshi_lm_caps_misfit(priv->moshi->format(), s);
  if (!why.empty()) {
    g_autofree gchar* text = gst_caps_to_string(caps);
    GST_ELEMENT_ERROR(self, STREAM, FORMAT,
                      ("These Mimi codes do not fit the model: %s.", why.c_str()),
                      ("caps %s", text));
    return FALSE;
  }
  gst_structure_get_int(s, "codebooks", &priv->in_codebooks);
  gst_structure_get_int(s, "rate", &priv->rate);
  gst_structure_get_int(s, "frame-size", &priv->frame_size);
  priv->codes.assign(priv->in_codebooks, 0);
  priv->frame_duration = gst_util_uint64_scale_int(priv->frame_size, GST_SECOND, priv->rate);
  priv->conversation->set_frame_ms(static_cast<double>(priv->frame_duration) / GST_MSECOND);
  gst_moshi_lm_publish(self, &priv->moshi->format(), priv->frame_duration);

  const kyutai::MoshiFormat& f = priv->moshi->format();
  g_autoptr(GstCaps) out =
      gst_kyutai_mimi_caps_new(priv->rate, priv->frame_size, f.model_codebooks, f.cardinality);
  g_autoptr(GstCaps) text = gst_static_pad_template_get_caps(&text_template);
  priv->text->push(GST_MINI_OBJECT(gst_event_new_caps(text)));
  return gst_pad_set_caps(self->srcpad, out);
}

// The text pad is a stream of its own: same group, and an id made from the input's.
static void gst_moshi_lm_stream_start(GstMoshiLm* self, GstEvent* event) {
  const gchar* upstream_id = nullptr;
  guint group = 0;
  gst_event_parse_stream_start(event, &upstream_id);
  g_autofree gchar* id = g_strconcat(upstream_id ? upstream_id : "moshilm", "/text", nullptr);
  GstEvent* text_start = gst_event_new_stream_start(id);
  if (gst_event_parse_group_id(event, &group)) gst_event_set_group_id(text_start, group);
  self->priv->text->push(GST_MINI_OBJECT(text_start));
  gst_pad_push_event(self->srcpad, event);
}

// Text left in the conversation at the end of the stream, pushed before EOS.
static void gst_moshi_lm_flush_text(GstMoshiLm* self) {
  GstMoshiLmPrivate* priv = self->priv;
  if (!priv->conversation) return;
  const std::string text = priv->conversation->flush_text();
  if (text.empty() || !GST_CLOCK_TIME_IS_VALID(priv->next_pts)) return;
  GstBuffer* buffer = gst_buffer_new_memdup(text.data(), text.size());
  GST_BUFFER_PTS(buffer) = priv->next_pts;
  priv->text->push(GST_MINI_OBJECT(buffer));
}

// Serialized events go to both outputs, text_src's through its queue, first.
static gboolean gst_moshi_lm_forward(GstMoshiLm* self, GstEvent* event) {
  self->priv->text->push(GST_MINI_OBJECT(gst_event_ref(event)));
  return gst_pad_push_event(self->srcpad, event);
}

// FLUSH_START, and FLUSH_STOP, which begins a new conversation.
static gboolean gst_moshi_lm_flush(GstMoshiLm* self, GstEvent* event) {
  GstMoshiLmPrivate* priv = self->priv;
  if (GST_EVENT_TYPE(event) == GST_EVENT_FLUSH_START) {
    priv->text->flush_start(gst_event_ref(event));
    return gst_pad_push_event(self->srcpad, event);
  }
  gst_flow_combiner_reset(priv->combiner);
  const bool ok = gst_moshi_lm_new_conversation(self);
  priv->text->flush_stop(gst_event_ref(event));
  return gst_pad_push_event(self->srcpad, event) && ok;
}

static gboolean gst_moshi_lm_sink_event(GstPad* pad, GstObject* parent, GstEvent* event) {
  GstMoshiLm* self = GST_MOSHI_LM(parent);
  GstMoshiLmPrivate* priv = self->priv;
  switch (GST_EVENT_TYPE(event)) {
    case GST_EVENT_STREAM_START:
      if (!gst_moshi_lm_new_conversation(self)) {
        gst_event_unref(event);
        return FALSE;
      }
      gst_moshi_lm_stream_start(self, event);
      return TRUE;
    case GST_EVENT_CAPS: {
      GstCaps* caps;
      gst_event_parse_caps(event, &caps);
      const gboolean ok = gst_moshi_lm_set_caps(self, caps);
      gst_event_unref(event);
      return ok;
    }
    case GST_EVENT_SEGMENT:
      gst_event_copy_segment(event, &priv->segment);
      priv->next_pts = GST_CLOCK_TIME_NONE;
      break;
    case GST_EVENT_FLUSH_START:
    case GST_EVENT_FLUSH_STOP:
      return gst_moshi_lm_flush(self, event);
    case GST_EVENT_GAP: {
      // No user audio for a while: the model does not step, downstream gets the gap.
      GstClockTime ts, duration;
      gst_event_parse_gap(event, &ts, &duration);
      if (GST_CLOCK_TIME_IS_VALID(ts) && GST_CLOCK_TIME_IS_VALID(duration))
        priv->next_pts = ts + duration;
      break;
    }
    case GST_EVENT_TAG:
      // The user's codec and bitrate describe the voice, not the text.
      return gst_pad_push_event(self->srcpad, event);
    case GST_EVENT_EOS:
      gst_moshi_lm_flush_text(self);
      if (GstMessage* stopped = priv->speaking.end(GST_OBJECT(self)))
        gst_element_post_message(GST_ELEMENT(self), stopped);
      break;
    default:
      break;
  }
  if (GST_EVENT_IS_SERIALIZED(event)) return gst_moshi_lm_forward(self, event);
  return gst_pad_event_default(pad, parent, event);
}

// ---------------------------------------------------------------------------------------------
// Queries

// Upstream's latency plus one frame: a step must finish within a frame to keep up. A batched
// step may also wait for the other conversations, up to batch-wait.
static gboolean gst_moshi_lm_latency(GstMoshiLm* self, GstQuery* query) {
  if (!gst_pad_peer_query(self->sinkpad, query)) return FALSE;
  gboolean live;
  GstClockTime min, max;
  gst_query_parse_latency(query, &live, &min, &max);
  const auto [frame, wait] = gst_kyutai_locked(self, [&] {
    return std::pair{self->published_frame, self->published_wait};
  });
  if (GST_CLOCK_TIME_IS_VALID(frame)) {
    min += frame + wait;
    if (GST_CLOCK_TIME_IS_VALID(max)) max += frame + wait;
  }
  GST_DEBUG_OBJECT(self, "latency: live %d, min %" GST_TIME_FORMAT ", max %" GST_TIME_FORMAT, live,
                   GST_TIME_ARGS(min), GST_TIME_ARGS(max));
  gst_query_set_latency(query, live, min, max);
  return TRUE;
}

static gboolean gst_moshi_lm_src_query(GstPad* pad, GstObject* parent, GstQuery* query) {
  GstMoshiLm* self = GST_MOSHI_LM(parent);
  if (GST_QUERY_TYPE(query) == GST_QUERY_LATENCY) return gst_moshi_lm_latency(self, query);
  return gst_pad_query_default(pad, parent, query);
}

// Offers the model's needs upstream: enough codebooks and its cardinality.
static gboolean gst_moshi_lm_sink_query(GstPad* pad, GstObject* parent, GstQuery* query) {
  GstMoshiLm* self = GST_MOSHI_LM(parent);
  if (GST_QUERY_TYPE(query) != GST_QUERY_CAPS) return gst_pad_query_default(pad, parent, query);
  const auto [codebooks, cardinality] = gst_kyutai_locked(self, [&] {
    return std::pair{self->model_user_codebooks, self->model_cardinality};
  });
  if (codebooks == 0) return gst_pad_query_default(pad, parent, query);  // not started
  GstCaps* filter;
  gst_query_parse_caps(query, &filter);
  g_autoptr(GstCaps) templ = gst_static_pad_template_get_caps(&sink_template);
  GstCaps* result = gst_moshi_lm_caps_for_model(templ, codebooks, cardinality, filter);
  gst_query_set_caps_result(query, result);
  gst_caps_unref(result);
  return TRUE;
}

// ---------------------------------------------------------------------------------------------
// State changes

static gboolean gst_moshi_lm_start(GstMoshiLm* self) {
  GstMoshiLmPrivate* priv = self->priv;
  const GstKyutaiConfig config = gst_kyutai_settings_copy(GST_ELEMENT(self), &self->settings);
  priv->moshi = gst_moshi_load_lm(GST_ELEMENT(self), config);
  if (!priv->moshi) return FALSE;
  const guint64 seed = gst_moshi_lm_seed(self);
  const kyutai::BatchOptions batch = gst_moshi_lm_batch_options(self);
  const auto kv = gst_kyutai_locked(self, [&] {
    return self->kv_int8 ? kyutai::KvCacheFormat::Int8 : kyutai::KvCacheFormat::Model;
  });
  std::unique_ptr<kyutai::MoshiConversation> conversation;
  if (!GST_KYUTAI_TRY(GST_ELEMENT(self), LIBRARY, INIT,
                      "Cannot start a Moshi conversation with this model.", [&] {
                        conversation = std::make_unique<kyutai::MoshiConversation>(
                            priv->moshi, seed, batch, kv);
                      })) {
    priv->moshi.reset();
    return FALSE;
  }
  gst_kyutai_locked(self, [&] { priv->conversation = std::move(conversation); });
  gst_kyutai_settings_set_resolved(GST_ELEMENT(self), &self->settings,
                                   priv->moshi->weight_format());
  const kyutai::MoshiFormat& f = priv->moshi->format();
  GST_INFO_OBJECT(self, "model %s: reads %d codebooks, writes %d of %d entries, %d silent steps",
                  config.model.c_str(), f.user_codebooks, f.model_codebooks, f.cardinality,
                  f.max_delay);
  priv->in_codebooks = 0;
  priv->discont = true;
  gst_segment_init(&priv->segment, GST_FORMAT_TIME);
  gst_flow_combiner_reset(priv->combiner);
  gst_moshi_lm_publish(self, &f, GST_CLOCK_TIME_NONE);
  return TRUE;
}

static void gst_moshi_lm_stop(GstMoshiLm* self) {
  gst_moshi_lm_publish(self, nullptr, GST_CLOCK_TIME_NONE);
  std::unique_ptr<kyutai::MoshiConversation> conversation;
  gst_kyutai_locked(self, [&] {
    if (self->priv->conversation) self->priv->last_stats = self->priv->conversation->stats();
    conversation = std::move(self->priv->conversation);
  });
  conversation.reset();  // leaves the batch: not under the object lock
  self->priv->moshi.reset();
  self->priv->in_codebooks = 0;
  gst_kyutai_settings_set_resolved(GST_ELEMENT(self), &self->settings,
                                   kyutai::WeightFormat::Auto);
}

static GstStateChangeReturn gst_moshi_lm_change_state(GstElement* element,
                                                      GstStateChange transition) {
  GstMoshiLm* self = GST_MOSHI_LM(element);
  if (transition == GST_STATE_CHANGE_READY_TO_PAUSED && !gst_moshi_lm_start(self))
    return GST_STATE_CHANGE_FAILURE;
  const GstStateChangeReturn ret =
      GST_ELEMENT_CLASS(parent_class)->change_state(element, transition);
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY) gst_moshi_lm_stop(self);
  return ret;
}

// ---------------------------------------------------------------------------------------------
// GObject

static void gst_moshi_lm_init(GstMoshiLm* self) {
  self->priv = new GstMoshiLmPrivate();
  self->priv->combiner = gst_flow_combiner_new();
  gst_kyutai_settings_init(&self->settings, TRUE);
  self->temperature = kDefaultSampling.temperature;
  self->text_temperature = kDefaultSampling.text_temperature;
  self->top_k = kDefaultSampling.top_k;
  self->text_top_k = kDefaultSampling.text_top_k;
  self->repetition_penalty = kDefaultSampling.repetition_penalty;
  self->repetition_penalty_context =
      static_cast<guint>(kDefaultSampling.repetition_penalty_context);
  self->seed = GST_MOSHI_LM_DEFAULT_SEED;
  self->batch = GST_MOSHI_LM_DEFAULT_BATCH;
  self->batch_wait = kDefaultBatch.max_wait_ms;
  self->speaking_hold = GST_MOSHI_SPEAKING_DEFAULT_HOLD;
  self->published_frame = GST_CLOCK_TIME_NONE;

  self->sinkpad = gst_pad_new_from_static_template(&sink_template, "sink");
  gst_pad_set_chain_function(self->sinkpad, GST_DEBUG_FUNCPTR(gst_moshi_lm_chain));
  gst_pad_set_event_function(self->sinkpad, GST_DEBUG_FUNCPTR(gst_moshi_lm_sink_event));
  gst_pad_set_query_function(self->sinkpad, GST_DEBUG_FUNCPTR(gst_moshi_lm_sink_query));
  // Caps that do not fit the model reach the CAPS event, which says what is wrong.
  GST_PAD_SET_ACCEPT_TEMPLATE(self->sinkpad);
  gst_element_add_pad(GST_ELEMENT(self), self->sinkpad);
  for (auto [pad, templ] :
       {std::pair{&self->srcpad, &src_template}, {&self->textpad, &text_template}}) {
    *pad = gst_pad_new_from_static_template(templ, templ->name_template);
    gst_pad_set_query_function(*pad, GST_DEBUG_FUNCPTR(gst_moshi_lm_src_query));
    gst_pad_use_fixed_caps(*pad);
    gst_element_add_pad(GST_ELEMENT(self), *pad);
    gst_flow_combiner_add_pad(self->priv->combiner, *pad);
  }
  self->priv->text = std::make_unique<GstMoshiPadQueue>(self->textpad, TEXT_QUEUE_ITEMS);
}

static void gst_moshi_lm_finalize(GObject* object) {
  GstMoshiLm* self = GST_MOSHI_LM(object);
  gst_flow_combiner_free(self->priv->combiner);
  delete self->priv;
  self->priv = nullptr;
  gst_kyutai_settings_clear(&self->settings);
  G_OBJECT_CLASS(parent_class)->finalize(object);
}

static void gst_moshi_lm_class_init(GstMoshiLmClass* klass) {
  GObjectClass* gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass* element_class = GST_ELEMENT_CLASS(klass);
  gobject_class->set_property = gst_moshi_lm_set_property;
  gobject_class->get_property = gst_moshi_lm_get_property;
  gobject_class->finalize = gst_moshi_lm_finalize;
  gst_moshi_lm_install_properties(gobject_class);
  element_class->change_state = GST_DEBUG_FUNCPTR(gst_moshi_lm_change_state);

  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_add_static_pad_template(element_class, &text_template);
  gst_element_class_set_static_metadata(
      element_class, "Moshi dialogue model", "Filter/Audio",
      "Kyutai's Moshi, a full-duplex speech dialogue model, on Mimi codes: one step per 80 ms "
      "frame of the user's voice gives one frame of Moshi's voice (src) and its "
      "inner-monologue text (text_src), with the input's timestamps. GAP events cover the first "
      "steps, before the model speaks. FLUSH or a new stream begins a new conversation.",
      "gst-moshi developers");
  gst_element_class_add_static_metadata(
      element_class, "example",
      "gst-launch-1.0 autoaudiosrc ! audioconvert ! audioresample ! mimienc "
      "model=kyutai/moshiko-pytorch-bf16 ! moshilm model=kyutai/moshiko-pytorch-bf16 name=lm ! "
      "queue ! mimidec model=kyutai/moshiko-pytorch-bf16 ! audioconvert ! autoaudiosink "
      "lm.text_src ! queue ! fdsink fd=1");
  GST_DEBUG_CATEGORY_INIT(gst_moshi_lm_debug, "moshilm", 0, "Moshi dialogue model");
}
