#include "doors/kyutai_chat_media.h"

#include <gst/app/gstappsrc.h>

#include <algorithm>

#include "ogg_opus.h"

namespace moshigw {

namespace kyutai = gateway::kyutai;

namespace {

// About 4 s of the client's Opus (its pages are a few hundred bytes each 40 ms).
constexpr guint64 kInputBytes = 16 * 1024;
// About 2 s of Moshi's voice (one 40 ms page a message) and its text.
constexpr size_t kOutputMessages = 80;
constexpr double kPageSeconds = 0.04;  // opusenc frame-size=40 in kOggOpusEncodeFragment

GstElement* child(GstElement* bin, const char* name) {
  GstElement* element = gst_bin_get_by_name(GST_BIN(bin), name);
  if (element) gst_object_unref(element);
  return element;
}

}  // namespace

// Ogg goes in as bytes: oggdemux in push mode posts criticals on a time segment from upstream,
// and the pages carry their own granule positions.
std::string KyutaiChatMedia::source_description() const {
  return std::string("appsrc name=callersrc is-live=true format=bytes caps=audio/ogg ! ") +
         kyutai::kOggOpusDecodeFragment + " ! audioconvert ! audioresample";
}

std::string KyutaiChatMedia::sink_description() const {
  return "audioconvert ! audioresample ! audio/x-raw,format=S16LE,channels=1,rate=" +
         std::to_string(kyutai::kRate) + " ! " + kyutai::kOggOpusEncodeFragment +
         " ! appsink name=callersink sync=false async=false";
}

bool KyutaiChatMedia::attach(GstElement* pipeline, std::string& error) {
  src_ = child(pipeline, "callersrc");
  GstElement* sink = child(pipeline, "callersink");
  GstElement* moshi = child(pipeline, "moshi");
  if (!src_ || !sink || !moshi) {
    error = "the call's pipeline has no appsrc, appsink or moshibin";
    return false;
  }
  g_object_set(src_, "max-bytes", kInputBytes, "leaky-type",
               2 /* GST_APP_LEAKY_TYPE_DOWNSTREAM: the oldest */, nullptr);
  GstAppSinkCallbacks callbacks{};
  callbacks.new_sample = on_sample;
  gst_app_sink_set_callbacks(GST_APP_SINK(sink), &callbacks, this, nullptr);
  g_autoptr(GstPad) text = gst_element_get_static_pad(moshi, "text_src");
  gst_pad_add_probe(text, GST_PAD_PROBE_TYPE_BUFFER, on_text, this, nullptr);
  apply_session(moshi);
  last_input_us_ = g_get_monotonic_time();
  return true;
}

// What the client asked for, on moshibin's sampling properties; what it left out keeps
// moshibin's defaults. The seeds are the gateway's (docs/GATEWAY.md, "Kyutai's web client").
void KyutaiChatMedia::apply_session(GstElement* moshi) const {
  const kyutai::SessionParams& p = params_;
  if (p.text_temperature) g_object_set(moshi, "text-temperature", *p.text_temperature, nullptr);
  if (p.text_topk) g_object_set(moshi, "text-top-k", static_cast<gint>(*p.text_topk), nullptr);
  if (p.audio_temperature) g_object_set(moshi, "temperature", *p.audio_temperature, nullptr);
  if (p.audio_topk) g_object_set(moshi, "top-k", static_cast<gint>(*p.audio_topk), nullptr);
  // Only both together, as Kyutai's Rust server applies them.
  if (p.has_repetition_penalty())
    g_object_set(moshi, "repetition-penalty", *p.repetition_penalty,
                 "repetition-penalty-context", static_cast<guint>(*p.repetition_penalty_context),
                 nullptr);
}

void KyutaiChatMedia::detach() {
  src_ = nullptr;
}

const char* KyutaiChatMedia::overdue(gint64 now_us, gint64 started_us,
                                     const Config& config) const {
  const gint64 quiet_us = now_us - std::max(started_us, last_input_us_);
  return quiet_us > static_cast<gint64>(config.rtp_timeout_s * G_USEC_PER_SEC) ? "input-timeout"
                                                                              : nullptr;
}

std::string KyutaiChatMedia::dropped() const {
  g_autofree char* text =
      g_strdup_printf(", %.2f s of Moshi's voice dropped for a client that did not read",
                      static_cast<double>(pages_dropped_.load()) * kPageSeconds);
  return text;
}

void KyutaiChatMedia::push(const uint8_t* page, size_t size) {
  if (!src_ || size == 0) return;
  last_input_us_ = g_get_monotonic_time();
  gst_app_src_push_buffer(GST_APP_SRC(src_), gst_buffer_new_memdup(page, size));
}

std::vector<std::vector<uint8_t>> KyutaiChatMedia::take() {
  std::lock_guard<std::mutex> lock(output_mutex_);
  std::vector<std::vector<uint8_t>> out;
  out.reserve(output_.size());
  for (Outgoing& o : output_) out.push_back(std::move(o.message));
  output_.clear();
  return out;
}

// Streaming threads: past the bound, the oldest message that may go, goes.
void KyutaiChatMedia::queue(Outgoing out) {
  std::lock_guard<std::mutex> lock(output_mutex_);
  output_.push_back(std::move(out));
  if (output_.size() <= kOutputMessages) return;
  const auto oldest = std::find_if(output_.begin(), output_.end(),
                                   [](const Outgoing& o) { return !o.keep; });
  if (oldest == output_.end()) return;
  if (oldest->message[0] == static_cast<uint8_t>(kyutai::Kind::audio)) ++pages_dropped_;
  output_.erase(oldest);
}

// One Ogg page of Moshi's voice. The first two (OpusHead, OpusTags) must reach the client.
GstFlowReturn KyutaiChatMedia::on_sample(GstAppSink* sink, gpointer self) {
  auto* media = static_cast<KyutaiChatMedia*>(self);
  g_autoptr(GstSample) sample = gst_app_sink_pull_sample(sink);
  if (!sample) return GST_FLOW_EOS;
  GstBuffer* buffer = gst_sample_get_buffer(sample);
  GstMapInfo map;
  if (!gst_buffer_map(buffer, &map, GST_MAP_READ)) return GST_FLOW_OK;
  Outgoing out{kyutai::serialize(kyutai::Kind::audio, map.data, map.size),
               GST_BUFFER_FLAG_IS_SET(buffer, GST_BUFFER_FLAG_HEADER) || media->pages_made_ < 2};
  gst_buffer_unmap(buffer, &map);
  ++media->pages_made_;  // one streaming thread writes it
  media->queue(std::move(out));
  return GST_FLOW_OK;
}

// A piece of Moshi's text, on its way to the transcript: the client gets a copy.
GstPadProbeReturn KyutaiChatMedia::on_text(GstPad*, GstPadProbeInfo* info, gpointer self) {
  GstBuffer* buffer = GST_PAD_PROBE_INFO_BUFFER(info);
  GstMapInfo map;
  if (gst_buffer_get_size(buffer) == 0 || !gst_buffer_map(buffer, &map, GST_MAP_READ))
    return GST_PAD_PROBE_OK;
  static_cast<KyutaiChatMedia*>(self)->queue(
      {kyutai::serialize(kyutai::Kind::text, map.data, map.size), false});
  gst_buffer_unmap(buffer, &map);
  return GST_PAD_PROBE_OK;
}

}  // namespace moshigw
