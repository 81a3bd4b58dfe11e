#include "call/app_media.h"

#include <algorithm>

namespace moshigw {

namespace {

// How much of Moshi's voice waits for a client that does not read, and how much of the
// caller's audio waits for a pipeline that does not keep up.
constexpr double kOutputSeconds = 2.0;
constexpr double kInputSeconds = 1.0;

GstElement* child(GstElement* bin, const char* name) {
  GstElement* element = gst_bin_get_by_name(GST_BIN(bin), name);
  if (element) gst_object_unref(element);
  return element;
}

}  // namespace

AppFormat pcm_format(int rate) {
  const std::string caps =
      "audio/x-raw,format=S16LE,layout=interleaved,channels=1,rate=" + std::to_string(rate);
  return {caps, "", "", caps, "L16/" + std::to_string(rate), rate * 2};
}

AppFormat mulaw_format() {
  return {"audio/x-mulaw,rate=8000,channels=1", "mulawdec", "mulawenc",
          "audio/x-raw,format=S16LE,rate=8000,channels=1", "PCMU/8000", 8000};
}

std::string AppMedia::source_description() const {
  return "appsrc name=callersrc is-live=true format=time do-timestamp=true caps=\"" +
         format_.caps + "\" ! " + (format_.decoder.empty() ? "" : format_.decoder + " ! ") +
         "audioconvert ! audioresample";
}

std::string AppMedia::sink_description() const {
  return "audioconvert ! audioresample ! " + format_.raw_caps + " ! " +
         (format_.encoder.empty() ? "" : format_.encoder + " ! ") +
         "appsink name=callersink sync=false async=false caps=\"" + format_.caps + "\"";
}

bool AppMedia::attach(GstElement* pipeline, std::string& error) {
  src_ = child(pipeline, "callersrc");
  GstElement* sink = child(pipeline, "callersink");
  if (!src_ || !sink) {
    error = "the call's pipeline has no appsrc or appsink";
    return false;
  }
  // A pipeline that stalls drops the caller's oldest audio rather than queueing it for ever.
  g_object_set(src_, "max-bytes",
               static_cast<guint64>(format_.bytes_per_second * kInputSeconds), "leaky-type",
               2 /* GST_APP_LEAKY_TYPE_DOWNSTREAM: the oldest */, nullptr);
  GstAppSinkCallbacks callbacks{};
  callbacks.new_sample = on_sample;
  gst_app_sink_set_callbacks(GST_APP_SINK(sink), &callbacks, this, nullptr);
  last_input_us_ = g_get_monotonic_time();
  return true;
}

void AppMedia::detach() {
  src_ = nullptr;
}

const char* AppMedia::overdue(gint64 now_us, gint64 started_us, const Config& config) const {
  const gint64 last = std::max(started_us, last_input_us_);
  return now_us - last > static_cast<gint64>(config.rtp_timeout_s * G_USEC_PER_SEC)
             ? "input-timeout"
             : nullptr;
}

std::string AppMedia::dropped() const {
  g_autofree char* text =
      g_strdup_printf(", %.2f s of Moshi's voice dropped for a client that did not read",
                      static_cast<double>(output_dropped_.load()) / format_.bytes_per_second);
  return text;
}

void AppMedia::push(const void* data, size_t size) {
  if (!src_ || size == 0) return;
  last_input_us_ = g_get_monotonic_time();
  GstBuffer* buffer = gst_buffer_new_memdup(data, size);
  gst_app_src_push_buffer(GST_APP_SRC(src_), buffer);  // takes the buffer
}

std::string AppMedia::pull(size_t size) {
  std::lock_guard<std::mutex> lock(output_mutex_);
  if (output_.size() < size) return "";
  std::string out(output_.begin(), output_.begin() + size);
  output_.erase(output_.begin(), output_.begin() + size);
  return out;
}

// Streaming thread: Moshi's voice waits for the door, the oldest dropped past the bound.
GstFlowReturn AppMedia::on_sample(GstAppSink* sink, gpointer self) {
  auto* media = static_cast<AppMedia*>(self);
  g_autoptr(GstSample) sample = gst_app_sink_pull_sample(sink);
  if (!sample) return GST_FLOW_EOS;
  GstMapInfo map;
  GstBuffer* buffer = gst_sample_get_buffer(sample);
  if (!gst_buffer_map(buffer, &map, GST_MAP_READ)) return GST_FLOW_OK;
  const auto bound = static_cast<size_t>(media->format_.bytes_per_second * kOutputSeconds);
  {
    std::lock_guard<std::mutex> lock(media->output_mutex_);
    media->output_.insert(media->output_.end(), map.data, map.data + map.size);
    if (media->output_.size() > bound) {
      const size_t excess = media->output_.size() - bound;
      media->output_.erase(media->output_.begin(), media->output_.begin() + excess);
      media->output_dropped_ += excess;
    }
  }
  gst_buffer_unmap(buffer, &map);
  return GST_FLOW_OK;
}

}  // namespace moshigw
