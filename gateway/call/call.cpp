#include "call/call.h"

#include <gst/audio/audio.h>

#include <algorithm>

namespace moshigw {

namespace {

// How far the caller's audio may run ahead of the wall clock (jitter, a late burst).
constexpr GstClockTime kPaceBurst = 500 * GST_MSECOND;

// A child of `bin` by name (the child's own reference is kept by bin).
GstElement* child(GstElement* bin, const char* name) {
  GstElement* element = gst_bin_get_by_name(GST_BIN(bin), name);
  if (element) gst_object_unref(element);
  return element;
}

// The first error on the pipeline's bus, for a failed state change.
std::string pop_error(GstElement* pipeline) {
  g_autoptr(GstBus) bus = gst_element_get_bus(pipeline);
  g_autoptr(GstMessage) message = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
  if (!message) return "the pipeline did not start";
  g_autoptr(GError) error = nullptr;
  g_autofree char* debug = nullptr;
  gst_message_parse_error(message, &error, &debug);
  return std::string(error->message) + (debug ? std::string(" (") + debug + ")" : "");
}

}  // namespace

Call::Call(CallRegistry& registry, const char* door, std::string caller,
           std::unique_ptr<MediaEnd> media, std::function<void(const char*)> hangup)
    : registry_(registry),
      door_(door),
      id_(registry.next_id()),
      seed_(registry.seed_for(id_)),
      caller_(std::move(caller)),
      media_(std::move(media)),
      hangup_(std::move(hangup)) {
  registry_.add(this);
}

Call::~Call() {
  stop("destroyed");
  registry_.remove(this);
}

bool Call::start(std::string& error) {
  started_us_ = g_get_monotonic_time();
  if (!build(error)) return false;
  if (gst_element_set_state(pipeline_, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    error = pop_error(pipeline_);
    return false;
  }
  g_autoptr(GstBus) bus = gst_element_get_bus(pipeline_);
  bus_watch_ = gst_bus_add_watch(bus, on_bus, this);
  answered_ = true;
  registry_.metrics().call_answered(door_);
  return true;
}

// The call's pipeline, as gst-launch would take it (call.h).
std::string Call::describe(const Config& config) const {
  const bool stt = !config.stt_model.empty();
  const char* text_sink = config.transcript_dir.empty() || stt
                              ? "fakesink sync=false async=false"
                              : "filesink name=text sync=false async=false";
  std::string description = media_->source_description() +
                            (stt ? " ! tee name=caller ! queue" : "") + " ! moshibin name=moshi ! " +
                            media_->sink_description() + " moshi.text_src ! queue name=moshitext ! " +
                            text_sink;
  if (stt)
    description += " caller. ! queue ! kyutaistt name=stt ! fakesink sync=false async=false";
  return description;
}

bool Call::attach_transcript(const Config& config, std::string& error) {
  if (config.transcript_dir.empty()) return true;
  g_autofree char* name = g_strdup_printf("call-%d.txt", id_);
  g_autofree char* path = g_build_filename(config.transcript_dir.c_str(), name, nullptr);
  if (GstElement* text = child(pipeline_, "text")) {
    g_object_set(text, "location", path, nullptr);
    return true;
  }
  transcript_ = std::make_unique<Transcript>(path);
  if (!transcript_->ok()) {
    error = std::string("cannot write the transcript ") + path;
    return false;
  }
  GstElement* stt = child(pipeline_, "stt");
  g_object_set(stt, "model", config.stt_model.c_str(), "device", config.device.c_str(), "weights",
               static_cast<gint>(config.weights), nullptr);
  g_autoptr(GstPad) moshi_text = gst_element_get_static_pad(child(pipeline_, "moshitext"), "src");
  g_autoptr(GstPad) caller_text = gst_element_get_static_pad(stt, "src");
  transcript_->listen(moshi_text, Transcript::Speaker::moshi);
  transcript_->listen(caller_text, Transcript::Speaker::caller);
  return true;
}

bool Call::build(std::string& error) {
  const Config& config = registry_.config();
  const std::string description = describe(config);
  g_autoptr(GError) gerror = nullptr;
  pipeline_ = gst_parse_launch(description.c_str(), &gerror);
  if (!pipeline_ || gerror) {
    error = std::string("cannot build the call's pipeline: ") +
            (gerror ? gerror->message : "unknown error");
    return false;
  }
  if (!attach_transcript(config, error)) return false;
  moshi_ = child(pipeline_, "moshi");
  configure_moshibin(moshi_, config);
  g_object_set(moshi_, "seed", static_cast<guint64>(seed_), nullptr);
  // The pace applies to all the caller's audio: before the tee when there is one.
  GstElement* paced = config.stt_model.empty() ? moshi_ : child(pipeline_, "caller");
  g_autoptr(GstPad) audio = gst_element_get_static_pad(paced, "sink");
  gst_pad_add_probe(audio, GST_PAD_PROBE_TYPE_BUFFER, on_audio, this, nullptr);
  return media_->attach(pipeline_, error);
}

void Call::stop(const char* reason) {
  if (stopped_) return;
  stopped_ = true;
  const StepReading steps = moshi_ ? collect() : StepReading();
  if (bus_watch_) g_source_remove(bus_watch_);
  bus_watch_ = 0;
  if (pipeline_) {
    gst_element_set_state(pipeline_, GST_STATE_NULL);
    gst_object_unref(pipeline_);
  }
  media_->detach();
  pipeline_ = moshi_ = nullptr;
  transcript_.reset();  // the pipeline, which writes it, is stopped
  if (!answered_) return;  // never started: nothing to report
  registry_.metrics().call_ended(door_, reason);
  const double seconds = (g_get_monotonic_time() - started_us_) / 1e6;
  g_message("call %d ended (%s): door %s, caller %s, codec %s, %.1f s, seed %" G_GUINT64_FORMAT
            ", %" G_GUINT64_FORMAT " steps, median step %.2f ms, %.2f s of audio faster than "
            "real time dropped%s",
            id_, reason, door_, caller_.c_str(), media_->codec().c_str(), seconds, seed_,
            steps.steps, steps.median_ms, paced_out_ns_.load() / 1e9, media_->dropped().c_str());
}

const char* Call::overdue(gint64 now_us) const {
  if (stopped_) return nullptr;
  return media_->overdue(now_us, started_us_, registry_.config());
}

double Call::collect_steps() {
  return moshi_ ? collect().real_time_factor : 0;
}

// The metrics get the difference since the last reading; a new conversation (FLUSH) counts
// again from zero.
StepReading Call::collect() {
  StepReading now = read_steps(moshi_);
  bool restarted = counted_steps_.size() != now.counts.size() || now.total_ms < counted_ms_;
  for (size_t i = 0; !restarted && i < now.counts.size(); ++i)
    restarted = now.counts[i] < counted_steps_[i];
  if (restarted) {
    counted_steps_.assign(now.counts.size(), 0);
    counted_ms_ = 0;
  }
  std::vector<uint64_t> added(now.counts.size());
  for (size_t i = 0; i < now.counts.size(); ++i) added[i] = now.counts[i] - counted_steps_[i];
  registry_.metrics().add_steps(now.bounds_ms, added, now.total_ms - counted_ms_);
  counted_steps_ = now.counts;
  counted_ms_ = now.total_ms;
  return now;
}

gboolean Call::on_bus(GstBus*, GstMessage* message, gpointer self) {
  auto* call = static_cast<Call*>(self);
  if (GST_MESSAGE_TYPE(message) == GST_MESSAGE_WARNING) {
    g_autoptr(GError) error = nullptr;
    gst_message_parse_warning(message, &error, nullptr);
    g_message("call %d: %s: %s", call->id_, GST_OBJECT_NAME(message->src), error->message);
  }
  if (GST_MESSAGE_TYPE(message) != GST_MESSAGE_ERROR &&
      GST_MESSAGE_TYPE(message) != GST_MESSAGE_EOS)
    return G_SOURCE_CONTINUE;
  if (GST_MESSAGE_TYPE(message) == GST_MESSAGE_ERROR) {
    g_autoptr(GError) error = nullptr;
    g_autofree char* debug = nullptr;
    gst_message_parse_error(message, &error, &debug);
    g_warning("call %d: %s: %s (%s)", call->id_, GST_OBJECT_NAME(message->src), error->message,
              debug ? debug : "");
  }
  // The door stops this call (and its bus watch) and hangs up its way; this object stays
  // alive until the door lets it go.
  call->bus_watch_ = 0;
  call->hangup_("media-error");
  return G_SOURCE_REMOVE;
}

// A token bucket of audio time: it fills with the wall clock up to kPaceBurst, and each buffer
// of the caller's audio takes its duration; a buffer that finds too little is dropped.
GstPadProbeReturn Call::on_audio(GstPad* pad, GstPadProbeInfo* info, gpointer self) {
  auto* call = static_cast<Call*>(self);
  GstBuffer* buffer = GST_PAD_PROBE_INFO_BUFFER(info);
  GstClockTime duration = GST_BUFFER_DURATION(buffer);
  if (!GST_CLOCK_TIME_IS_VALID(duration)) {
    g_autoptr(GstCaps) caps = gst_pad_get_current_caps(pad);
    GstAudioInfo audio;
    if (!caps || !gst_audio_info_from_caps(&audio, caps) || audio.bpf == 0) return GST_PAD_PROBE_OK;
    duration = gst_util_uint64_scale(gst_buffer_get_size(buffer) / audio.bpf, GST_SECOND,
                                     audio.rate);
  }
  const gint64 now = g_get_monotonic_time();
  const GstClockTime earned =
      call->pace_last_us_ ? (now - call->pace_last_us_) * GST_USECOND : kPaceBurst;
  call->pace_credit_ = std::min<GstClockTime>(call->pace_credit_ + earned, kPaceBurst);
  call->pace_last_us_ = now;
  if (duration > call->pace_credit_) {
    call->paced_out_ns_ += duration;
    return GST_PAD_PROBE_DROP;
  }
  call->pace_credit_ -= duration;
  return GST_PAD_PROBE_OK;
}

}  // namespace moshigw
