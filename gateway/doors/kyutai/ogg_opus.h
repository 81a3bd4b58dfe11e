// Ogg Opus both ways for Kyutai's web client, with GStreamer's own elements.
//
// In: the client sends one Ogg page per message (OpusHead, OpusTags, then pages of up to two
// 20 ms packets), all one logical stream. Its OpusHead gives the AudioContext's rate (44100 in
// headless Chromium) as the input rate; GStreamer 1.22's oggdemux copies that rate into its
// caps, opusdec's template refuses it and the demuxer stops with not-linked. opusparse between
// them re-derives the caps from the packets, so the stream decodes whatever rate the header
// names (tests/gateway/test_kyutai_ogg_opus.cpp shows both).
//
// Out: the client decodes a page only after an OpusHead page (beginning of stream, sequence 0)
// and an OpusTags page (sequence 1), and Kyutai's servers send one Opus packet per page.
// oggmux with no muxing or page delay closes a page after every packet, and opusenc at 40 ms
// frames is what Kyutai's Rust server encodes (960 samples at 24 kHz, VoIP), so no Ogg framing
// is written by hand.
#pragma once

#include <gst/gst.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace gateway::kyutai {

constexpr int kRate = 24000;  // Mimi's rate, both ways

// Pipeline fragments, for a call's pipeline: Ogg pages in, raw audio out (convert and resample
// it to what follows); raw 24 kHz mono in, one Ogg page per buffer out, headers first.
extern const char* const kOggOpusDecodeFragment;
extern const char* const kOggOpusEncodeFragment;

// The elements of both fragments that this machine's GStreamer lacks (none when all are there).
// opusparse is in Debian's gstreamer1.0-plugins-bad, the others in gstreamer1.0-plugins-base.
std::vector<std::string> missing_ogg_opus_elements();

// appsrc ! fragment ! appsink, running from construction; what the fragment produces is read
// back buffer by buffer. Throws std::runtime_error when the pipeline cannot be built or fails.
class AppPipeline {
 public:
  AppPipeline(const std::string& src_caps, const std::string& fragment,
              const std::string& sink_caps);
  ~AppPipeline();
  AppPipeline(const AppPipeline&) = delete;
  AppPipeline& operator=(const AppPipeline&) = delete;

  void push(const void* data, size_t size, GstClockTime pts = GST_CLOCK_TIME_NONE,
            GstClockTime duration = GST_CLOCK_TIME_NONE);
  // Every buffer produced so far, without waiting.
  std::vector<std::vector<uint8_t>> take();
  // Ends the stream and returns what was left, waiting up to `timeout` for the end.
  std::vector<std::vector<uint8_t>> finish(GstClockTime timeout = 5 * GST_SECOND);

 private:
  void release();
  void check_bus();
  std::vector<std::vector<uint8_t>> pull(GstClockTime timeout, bool until_eos);
  GstElement* pipeline_ = nullptr;
  GstElement* src_ = nullptr;
  GstElement* sink_ = nullptr;
};

// The client's pages -> 24 kHz mono signed 16-bit samples.
class OggOpusDecoder {
 public:
  OggOpusDecoder();
  void push_page(const uint8_t* page, size_t size) { pipeline_.push(page, size); }
  std::vector<int16_t> take() { return samples(pipeline_.take()); }
  std::vector<int16_t> finish() { return samples(pipeline_.finish()); }

 private:
  static std::vector<int16_t> samples(const std::vector<std::vector<uint8_t>>& buffers);
  AppPipeline pipeline_;
};

// 24 kHz mono signed 16-bit samples -> Ogg pages, one Opus packet each, headers first.
class OggOpusEncoder {
 public:
  OggOpusEncoder();
  void push(const int16_t* samples, size_t count);
  std::vector<std::vector<uint8_t>> take() { return pipeline_.take(); }
  std::vector<std::vector<uint8_t>> finish() { return pipeline_.finish(); }

 private:
  AppPipeline pipeline_;
  uint64_t pushed_ = 0;  // samples, for the timestamps oggmux's granules come from
};

}  // namespace gateway::kyutai
