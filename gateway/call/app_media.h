// The media end of a call whose door reads and writes the caller's audio itself (AudioSocket,
// media streams): the door pushes what the caller sends into an appsrc, and takes Moshi's voice
// from an appsink in frames of the caller's format, at the caller's pace.
//
//   appsrc (caller's format) ! [decoder] ! audioconvert ! audioresample ! [moshibin] !
//   audioconvert ! audioresample ! (caller's raw format) ! [encoder] ! appsink
//
// Both ways are bounded: the appsrc holds at most 1 s (a stalled pipeline drops the oldest),
// and Moshi's voice waits at most kOutputSeconds for a client that stops reading (the oldest is
// dropped and counted).
#pragma once

#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>

#include <atomic>
#include <deque>
#include <mutex>
#include <string>

#include "call/media_end.h"

namespace moshigw {

// The caller's audio format: caps of what the door pushes and pulls, and the elements that turn
// it into raw audio and back ("" when it is raw already).
struct AppFormat {
  std::string caps;     // "audio/x-raw,format=S16LE,..." or "audio/x-mulaw,..."
  std::string decoder;  // "mulawdec" or ""
  std::string encoder;  // "mulawenc" or ""
  std::string raw_caps; // the raw audio next to the codec (the encoder's input)
  std::string name;     // for the summary line: "L16/8000", "PCMU/8000"
  int bytes_per_second = 0;
};

// Signed 16-bit little-endian mono PCM at `rate` (AudioSocket), and 8 kHz mono mu-law (media
// streams, G.711 as Twilio sends it).
AppFormat pcm_format(int rate);
AppFormat mulaw_format();

class AppMedia : public MediaEnd {
 public:
  explicit AppMedia(AppFormat format) : format_(std::move(format)) {}

  std::string source_description() const override;
  std::string sink_description() const override;
  bool attach(GstElement* pipeline, std::string& error) override;
  void detach() override;
  // "input-timeout": the caller sent no audio for rtp-timeout seconds.
  const char* overdue(gint64 now_us, gint64 started_us, const Config& config) const override;
  std::string codec() const override { return format_.name; }
  std::string dropped() const override;

  // The caller's audio, as it came (main loop).
  void push(const void* data, size_t size);
  // `size` bytes of Moshi's voice, oldest first, or none while fewer are ready.
  std::string pull(size_t size);
  const AppFormat& format() const { return format_; }

 private:
  static GstFlowReturn on_sample(GstAppSink* sink, gpointer self);

  const AppFormat format_;
  GstElement* src_ = nullptr;  // the pipeline's, while attached
  gint64 last_input_us_ = 0;
  // Moshi's voice not yet taken by the door: written by the streaming thread.
  std::mutex output_mutex_;
  std::deque<char> output_;
  std::atomic<guint64> output_dropped_{0};  // bytes
};

}  // namespace moshigw
