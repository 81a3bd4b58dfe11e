#include "call.h"

#include <gst/audio/audio.h>
#include <gst/net/gstnetaddressmeta.h>
#include <gst/rtp/gstrtpbuffer.h>

#include <algorithm>

#include "connections.h"

namespace moshigw {

namespace {

std::string pipeline_description(const Config& config, const Offer& offer) {
  const Codec& c = *offer.codec;
  g_autofree char* pay = g_strdup_printf(c.pay, offer.pt);
  const char* text_sink = config.transcript_dir.empty()
                              ? "fakesink sync=false async=false"
                              : "filesink name=text sync=false async=false";
  g_autofree char* description = g_strdup_printf(
      "udpsrc name=rtpsrc close-socket=false caps=\"application/x-rtp,media=audio,"
      "clock-rate=%d,encoding-name=%s,payload=%d\" ! rtpjitterbuffer latency=60 ! %s ! "
      "audioconvert ! audioresample ! moshibin name=moshi ! audioconvert ! audioresample ! "
      "audio/x-raw,rate=%d,channels=1 ! %s ! valve name=hold ! "
      "udpsink name=rtpsink close-socket=false async=false "
      "moshi.text_src ! queue ! %s",
      c.clock_rate, c.caps_name, offer.pt, c.depay, c.audio_rate, pay, text_sink);
  return description;
}

// How far the caller's audio may run ahead of the wall clock (jitter, a late burst).
constexpr GstClockTime kPaceBurst = 500 * GST_MSECOND;

// "address:port" as address_text() writes it, from the SDP's literal address.
std::string source_text(const std::string& address, int port) {
  g_autoptr(GInetAddress) inet = g_inet_address_new_from_string(address.c_str());
  if (!inet) return "";
  g_autofree char* ip = g_inet_address_to_string(inet);
  return std::string(ip) + ":" + std::to_string(port);
}

// A child of `bin` by name, set with `name`=`value` (the child's own reference is kept by bin).
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

// The values of a GstValueArray field, as T (double or guint64).
template <typename T>
std::vector<T> array_field(const GstStructure* s, const char* field) {
  std::vector<T> values;
  const GValue* array = gst_structure_get_value(s, field);
  if (!array || !GST_VALUE_HOLDS_ARRAY(array)) return values;
  for (guint i = 0; i < gst_value_array_get_size(array); ++i) {
    const GValue* v = gst_value_array_get_value(array, i);
    values.push_back(G_VALUE_HOLDS_DOUBLE(v) ? static_cast<T>(g_value_get_double(v))
                                             : static_cast<T>(g_value_get_uint64(v)));
  }
  return values;
}

}  // namespace

Call::Call(int id, std::string caller, Metrics& metrics,
           std::function<void(int, const char*)> hangup)
    : id_(id), caller_(std::move(caller)), metrics_(metrics), hangup_(std::move(hangup)) {}

Call::~Call() {
  stop("destroyed");
}

bool Call::start(const Config& config, const Offer& offer, std::unique_ptr<RtpPorts> ports,
                 uint64_t seed, std::string& error) {
  offer_ = offer;
  ports_ = std::move(ports);
  seed_ = seed;
  started_us_ = g_get_monotonic_time();
  if (!build(config, error)) return false;
  update(offer);
  if (gst_element_set_state(pipeline_, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    error = pop_error(pipeline_);
    return false;
  }
  g_autoptr(GstBus) bus = gst_element_get_bus(pipeline_);
  bus_watch_ = gst_bus_add_watch(bus, on_bus, this);
  return true;
}

bool Call::build(const Config& config, std::string& error) {
  g_autoptr(GError) gerror = nullptr;
  pipeline_ = gst_parse_launch(pipeline_description(config, offer_).c_str(), &gerror);
  if (!pipeline_ || gerror) {
    error = std::string("cannot build the call's pipeline: ") +
            (gerror ? gerror->message : "unknown error");
    return false;
  }
  g_object_set(child(pipeline_, "rtpsrc"), "socket", ports_->rtp, nullptr);
  g_object_set(child(pipeline_, "rtpsink"), "socket", ports_->rtp, nullptr);
  if (GstElement* text = child(pipeline_, "text")) {
    g_autofree char* name = g_strdup_printf("call-%d.txt", id_);
    g_autofree char* path = g_build_filename(config.transcript_dir.c_str(), name, nullptr);
    g_object_set(text, "location", path, nullptr);
  }
  moshi_ = child(pipeline_, "moshi");
  set_moshi(config);
  watch_probes();
  return true;
}

void configure_moshibin(GstElement* moshi, const Config& config) {
  // The weight format was parsed at start; the values of moshibin's 'weights' are the enum's.
  g_object_set(moshi, "model", config.model.c_str(), "device", config.device.c_str(), "threads",
               config.threads, "weights", static_cast<gint>(config.weights), nullptr);
}

StepReading read_steps(GstElement* moshi) {
  StepReading r;
  GstStructure* stats = nullptr;
  g_object_get(moshi, "stats", &stats, nullptr);
  if (!stats) return r;
  gst_structure_get_uint64(stats, "steps", &r.steps);
  gst_structure_get_double(stats, "median-step-ms", &r.median_ms);
  gst_structure_get_double(stats, "real-time-factor", &r.real_time_factor);
  gst_structure_get_double(stats, "total-step-ms", &r.total_ms);
  r.bounds_ms = array_field<double>(stats, "histogram-bounds-ms");
  r.counts = array_field<uint64_t>(stats, "histogram");
  gst_structure_free(stats);
  return r;
}

void Call::set_moshi(const Config& config) {
  configure_moshibin(moshi_, config);
  g_object_set(moshi_, "seed", static_cast<guint64>(seed_), nullptr);
}

// RTP from the caller is timed and filtered (only the caller's source and the negotiated payload
// type go on: DTMF telephone-events and strays are dropped), and its audio is paced.
void Call::watch_probes() {
  g_autoptr(GstPad) rtp = gst_element_get_static_pad(child(pipeline_, "rtpsrc"), "src");
  gst_pad_add_probe(rtp, GST_PAD_PROBE_TYPE_BUFFER, on_rtp, this, nullptr);
  g_autoptr(GstPad) audio = gst_element_get_static_pad(moshi_, "sink");
  gst_pad_add_probe(audio, GST_PAD_PROBE_TYPE_BUFFER, on_audio, this, nullptr);
}

void Call::update(const Offer& offer) {
  const bool was_sending = offer_.direction & kSendOnly;
  offer_.remote_address = offer.remote_address;
  offer_.remote_port = offer.remote_port;
  offer_.direction = offer.direction;
  {
    std::lock_guard<std::mutex> lock(source_mutex_);
    expected_source_ = source_text(offer.remote_address, offer.remote_port);
    source_.clear();  // a new address: the first source seen is taken again
  }
  const gint64 now = g_get_monotonic_time();
  if (!(offer.direction & kSendOnly) && held_since_us_ == 0) held_since_us_ = last_probe_us_ = now;
  if (offer.direction & kSendOnly) held_since_us_ = probe_sent_us_ = 0;
  if (!pipeline_) return;
  // Hold: the caller does not want to receive, so Moshi's voice is dropped before the socket.
  // The sink always has the offer's address (0.0.0.0 on an RFC 2543 hold), which negotiate()
  // checked is a literal of the socket's family; its default, localhost, may resolve to ::1.
  g_object_set(child(pipeline_, "hold"), "drop", !(offer.direction & kRecvOnly), nullptr);
  g_object_set(child(pipeline_, "rtpsink"), "host", offer.remote_address.c_str(), "port",
               offer.remote_port, nullptr);
  // Resumed: the time-out counts from now, not from the last packet before the hold.
  if (!was_sending && (offer.direction & kSendOnly)) last_rtp_us_ = now;
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
  pipeline_ = moshi_ = nullptr;
  ports_.reset();
  if (!offer_.codec) return;  // never started: nothing to report
  const double seconds = (g_get_monotonic_time() - started_us_) / 1e6;
  g_message("call %d ended (%s): caller %s, codec %s/%d, %.1f s, seed %" G_GUINT64_FORMAT
            ", %" G_GUINT64_FORMAT " steps, median step %.2f ms, %.2f s of audio faster than "
            "real time dropped, %" G_GUINT64_FORMAT " RTP packets from other sources dropped",
            id_, reason, caller_.c_str(), offer_.codec->name, offer_.codec->clock_rate, seconds,
            seed_, steps.steps, steps.median_ms, paced_out_ns_.load() / 1e9,
            foreign_packets_.load());
}

const char* Call::overdue(gint64 now_us, const Config& config) const {
  if (stopped_) return nullptr;
  const auto us = [](double seconds) { return static_cast<gint64>(seconds * G_USEC_PER_SEC); };
  if (offer_.direction & kSendOnly)
    return now_us - std::max(started_us_, last_rtp_us_.load()) > us(config.rtp_timeout_s)
               ? "rtp-timeout"
               : nullptr;
  if (now_us - held_since_us_ > us(config.hold_timeout_s)) return "hold-timeout";
  if (probe_sent_us_ && now_us - probe_sent_us_ > us(config.probe_interval_s))
    return "probe-timeout";
  return nullptr;
}

bool Call::probe_due(gint64 now_us, const Config& config) {
  if (stopped_ || held_since_us_ == 0 || probe_sent_us_) return false;
  if (now_us - last_probe_us_ < static_cast<gint64>(config.probe_interval_s * G_USEC_PER_SEC))
    return false;
  probe_sent_us_ = last_probe_us_ = now_us;
  return true;
}

// Any final answer shows the caller is there (405 or 501: it just does not do OPTIONS), but 408
// (no answer at all) and 481 (it knows no such call) say the dialog is gone (RFC 5057).
bool Call::probe_answered(int status) {
  probe_sent_us_ = 0;
  return status != 408 && status != 481;
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
  metrics_.add_steps(now.bounds_ms, added, now.total_ms - counted_ms_);
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
  // The gateway stops this call (and its bus watch) and sends BYE; this object stays alive
  // until the dialog ends.
  call->bus_watch_ = 0;
  call->hangup_(call->id_, "media-error");
  return G_SOURCE_REMOVE;
}

// The caller's SDP address always wins; any other source is taken only while none is (NAT).
bool Call::from_caller(GstBuffer* rtp) {
  GstNetAddressMeta* meta = gst_buffer_get_net_address_meta(rtp);
  const std::string from = meta ? address_text(meta->addr) : "";
  std::lock_guard<std::mutex> lock(source_mutex_);
  if (from == source_) return true;
  if (from == expected_source_ || source_.empty()) {
    if (from != expected_source_)
      g_message("call %d: RTP from %s, not %s as its SDP says: taken (NAT)", id_, from.c_str(),
                expected_source_.c_str());
    source_ = from;
    return true;
  }
  foreign_packets_++;
  return false;
}

GstPadProbeReturn Call::on_rtp(GstPad*, GstPadProbeInfo* info, gpointer self) {
  auto* call = static_cast<Call*>(self);
  if (!call->from_caller(GST_PAD_PROBE_INFO_BUFFER(info))) return GST_PAD_PROBE_DROP;
  GstRTPBuffer rtp = GST_RTP_BUFFER_INIT;
  if (!gst_rtp_buffer_map(GST_PAD_PROBE_INFO_BUFFER(info), GST_MAP_READ, &rtp))
    return GST_PAD_PROBE_DROP;
  const int pt = gst_rtp_buffer_get_payload_type(&rtp);
  gst_rtp_buffer_unmap(&rtp);
  if (pt != call->offer_.pt) return GST_PAD_PROBE_DROP;
  call->last_rtp_us_ = g_get_monotonic_time();
  return GST_PAD_PROBE_OK;
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
