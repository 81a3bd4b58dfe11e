// The media end of a call through Kyutai's /api/chat (kyutai_chat.h): the client's Ogg Opus
// pages go into an appsrc, Moshi's voice comes out of an appsink one Ogg page per buffer, and
// Moshi's text is taken from moshibin's text_src as it is produced. Both leave as protocol
// messages, in the order they were made.
//
//   appsrc (audio/ogg, bytes) ! oggdemux ! opusparse ! opusdec ! audioconvert ! audioresample !
//   [moshibin] ! audioconvert ! audioresample ! 24 kHz mono ! opusenc ! oggmux ! appsink
//   [moshibin.text_src: a probe copies each piece]
//
// Bounded both ways, as the other app ends: the appsrc holds at most kInputBytes of pages (a
// stalled pipeline drops the oldest), and at most kOutputMessages wait for a client that stops
// reading (the oldest go first, never the two header pages, which the client's decoder needs).
// The session's sampling settings are set on moshibin before it plays.
#pragma once

#include <gst/app/gstappsink.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "call/media_end.h"
#include "protocol.h"

namespace moshigw {

class KyutaiChatMedia : public MediaEnd {
 public:
  explicit KyutaiChatMedia(gateway::kyutai::SessionParams params) : params_(params) {}

  std::string source_description() const override;
  std::string sink_description() const override;
  bool attach(GstElement* pipeline, std::string& error) override;
  void detach() override;
  // "input-timeout": the client sent no audio for rtp-timeout seconds.
  const char* overdue(gint64 now_us, gint64 started_us, const Config& config) const override;
  std::string codec() const override { return "Opus/24000"; }
  std::string dropped() const override;

  // One Ogg page of the client's (main loop).
  void push(const uint8_t* page, size_t size);
  // The messages ready for the client, oldest first, each a whole protocol message.
  std::vector<std::vector<uint8_t>> take();

 private:
  struct Outgoing {
    std::vector<uint8_t> message;
    bool keep = false;  // a header page: never dropped
  };
  static GstFlowReturn on_sample(GstAppSink* sink, gpointer self);
  static GstPadProbeReturn on_text(GstPad*, GstPadProbeInfo* info, gpointer self);
  void apply_session(GstElement* moshi) const;
  void queue(Outgoing out);

  const gateway::kyutai::SessionParams params_;
  GstElement* src_ = nullptr;  // the pipeline's, while attached
  gint64 last_input_us_ = 0;
  // Written by the streaming threads, taken by the main loop.
  std::mutex output_mutex_;
  std::deque<Outgoing> output_;
  guint64 pages_made_ = 0;
  std::atomic<guint64> pages_dropped_{0};
};

}  // namespace moshigw
