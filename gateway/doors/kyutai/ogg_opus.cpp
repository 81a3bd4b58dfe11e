#include "ogg_opus.h"

#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>

#include <algorithm>
#include <stdexcept>

namespace gateway::kyutai {

const char* const kOggOpusDecodeFragment = "oggdemux ! opusparse ! opusdec";
const char* const kOggOpusEncodeFragment =
    "opusenc frame-size=40 audio-type=voice ! oggmux max-delay=0 max-page-delay=0";

namespace {

const std::string kPcmCaps =
    "audio/x-raw, format=S16LE, layout=interleaved, channels=1, rate=" + std::to_string(kRate);

}  // namespace

std::vector<std::string> missing_ogg_opus_elements() {
  std::vector<std::string> missing;
  for (const std::string fragment : {kOggOpusDecodeFragment, kOggOpusEncodeFragment}) {
    // Each "! "-separated piece starts with its element's name.
    size_t start = 0;
    while (start < fragment.size()) {
      const size_t end = std::min(fragment.find('!', start), fragment.size());
      const size_t name = fragment.find_first_not_of(' ', start);
      const std::string element = fragment.substr(name, fragment.find_first_of(" !", name) - name);
      if (GstElementFactory* factory = gst_element_factory_find(element.c_str()))
        gst_object_unref(factory);
      else
        missing.push_back(element);
      start = end + 1;
    }
  }
  return missing;
}

AppPipeline::AppPipeline(const std::string& src_caps, const std::string& fragment,
                         const std::string& sink_caps) {
  // Ogg goes in as bytes: oggdemux in push mode with a time segment from upstream posts
  // criticals (GStreamer 1.22), and pages carry their own granule positions anyway.
  const bool ogg = src_caps.rfind("audio/ogg", 0) == 0;
  const std::string description = "appsrc name=src format=" + std::string(ogg ? "bytes" : "time") +
                                  " caps=\"" + src_caps + "\" ! " + fragment + " ! " + sink_caps +
                                  " ! appsink name=sink sync=false";
  GError* error = nullptr;
  pipeline_ = gst_parse_launch(description.c_str(), &error);
  if (!pipeline_ || error) {
    const std::string message = error ? error->message : "unknown error";
    g_clear_error(&error);
    if (pipeline_) gst_object_unref(pipeline_);
    throw std::runtime_error("cannot build \"" + description + "\": " + message);
  }
  src_ = gst_bin_get_by_name(GST_BIN(pipeline_), "src");
  sink_ = gst_bin_get_by_name(GST_BIN(pipeline_), "sink");
  if (gst_element_set_state(pipeline_, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    release();
    throw std::runtime_error("cannot start \"" + description + "\"");
  }
}

AppPipeline::~AppPipeline() {
  release();
}

void AppPipeline::release() {
  if (!pipeline_) return;
  gst_element_set_state(pipeline_, GST_STATE_NULL);
  gst_object_unref(src_);
  gst_object_unref(sink_);
  gst_object_unref(pipeline_);
  pipeline_ = nullptr;
}

void AppPipeline::push(const void* data, size_t size, GstClockTime pts, GstClockTime duration) {
  GstBuffer* buffer = gst_buffer_new_memdup(data, size);
  GST_BUFFER_PTS(buffer) = pts;
  GST_BUFFER_DURATION(buffer) = duration;
  if (gst_app_src_push_buffer(GST_APP_SRC(src_), buffer) != GST_FLOW_OK)
    throw std::runtime_error("the Ogg Opus pipeline no longer takes data");
  check_bus();
}

// A pipeline error (a corrupt stream, a refused header) becomes an exception.
void AppPipeline::check_bus() {
  g_autoptr(GstBus) bus = gst_element_get_bus(pipeline_);
  GstMessage* msg = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
  if (!msg) return;
  GError* error = nullptr;
  g_autofree gchar* debug = nullptr;
  gst_message_parse_error(msg, &error, &debug);
  const std::string text = std::string(error->message) + " (" + (debug ? debug : "") + ")";
  g_clear_error(&error);
  gst_message_unref(msg);
  throw std::runtime_error("Ogg Opus pipeline: " + text);
}

std::vector<std::vector<uint8_t>> AppPipeline::pull(GstClockTime timeout, bool until_eos) {
  std::vector<std::vector<uint8_t>> out;
  for (;;) {
    GstSample* sample = gst_app_sink_try_pull_sample(GST_APP_SINK(sink_), timeout);
    if (!sample) {
      check_bus();
      if (until_eos && !gst_app_sink_is_eos(GST_APP_SINK(sink_)))
        throw std::runtime_error("the Ogg Opus pipeline did not end in time");
      return out;
    }
    GstMapInfo map;
    GstBuffer* buffer = gst_sample_get_buffer(sample);
    if (gst_buffer_map(buffer, &map, GST_MAP_READ)) {
      out.emplace_back(map.data, map.data + map.size);
      gst_buffer_unmap(buffer, &map);
    }
    gst_sample_unref(sample);
  }
}

std::vector<std::vector<uint8_t>> AppPipeline::take() {
  return pull(0, false);
}

std::vector<std::vector<uint8_t>> AppPipeline::finish(GstClockTime timeout) {
  gst_app_src_end_of_stream(GST_APP_SRC(src_));
  return pull(timeout, true);
}

OggOpusDecoder::OggOpusDecoder()
    : pipeline_("audio/ogg",
                std::string(kOggOpusDecodeFragment) + " ! audioconvert ! audioresample", kPcmCaps) {
}

std::vector<int16_t> OggOpusDecoder::samples(const std::vector<std::vector<uint8_t>>& buffers) {
  std::vector<int16_t> out;
  for (const auto& b : buffers) {
    const auto* s = reinterpret_cast<const int16_t*>(b.data());
    out.insert(out.end(), s, s + b.size() / sizeof(int16_t));
  }
  return out;
}

OggOpusEncoder::OggOpusEncoder() : pipeline_(kPcmCaps, kOggOpusEncodeFragment, "audio/ogg") {}

void OggOpusEncoder::push(const int16_t* samples, size_t count) {
  const GstClockTime pts = gst_util_uint64_scale(pushed_, GST_SECOND, kRate);
  pushed_ += count;
  const GstClockTime end = gst_util_uint64_scale(pushed_, GST_SECOND, kRate);
  pipeline_.push(samples, count * sizeof(int16_t), pts, end - pts);
}

}  // namespace gateway::kyutai
