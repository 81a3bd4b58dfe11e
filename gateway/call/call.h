// One call, whichever door it came through: its own GStreamer pipeline around moshibin (a fresh
// conversation with its own seed), between the two ends its door gives it (media_end.h):
//
//   <caller's audio: MediaEnd source> ! moshibin ! <Moshi's voice: MediaEnd sink>
//   moshibin.text_src ! queue ! filesink (transcript) or fakesink
//
// With stt-model, the caller's audio also goes through kyutaistt, and both texts go into one
// transcript (transcript.h):
//
//   <caller's audio> ! tee ! queue ! moshibin ! ...   tee. ! queue ! kyutaistt ! fakesink
//
// The caller's audio is paced before Moshi, whatever the door: audio beyond a 0.5 s burst ahead
// of the wall clock is dropped, so one caller cannot take the compute of several. Everything but
// the probe runs in the main loop. Step times are moshilm's own (its `stats`), read in the main
// loop: no probe times Moshi from outside. The call counts in its door's metrics and in the
// registry (max-calls, numbering, seeds) from construction to destruction.
#pragma once

#include <gst/gst.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "call/media_end.h"
#include "call/moshibin.h"
#include "call/registry.h"
#include "call/transcript.h"
#include "common/config.h"

namespace moshigw {

class Call {
 public:
  // `door` labels the metrics ("sip", "audiosocket", ...); `caller` names the call in the log as
  // its door knows it. `hangup` is called (from the main loop) when the media fails: the door
  // then ends the call its own way.
  Call(CallRegistry& registry, const char* door, std::string caller,
       std::unique_ptr<MediaEnd> media, std::function<void(const char* reason)> hangup);
  ~Call();
  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;

  // Builds and plays the pipeline; counts the call as answered.
  bool start(std::string& error);
  // Stops the media, once; writes the call's summary line and counts why it ended.
  void stop(const char* reason);
  // Why the call must end now for want of the caller's audio, or nullptr.
  const char* overdue(gint64 now_us) const;
  // Adds the steps moshilm made since the last look to the metrics' histogram and returns the
  // call's real-time factor (on each scrape of /metrics).
  double collect_steps();

  int id() const { return id_; }
  bool stopped() const { return stopped_; }
  const std::string& caller() const { return caller_; }
  MediaEnd& media() { return *media_; }

 private:
  bool build(std::string& error);
  std::string describe(const Config& config) const;
  // The transcript's file or writer, and the caller's STT.
  bool attach_transcript(const Config& config, std::string& error);
  static gboolean on_bus(GstBus*, GstMessage* message, gpointer self);
  static GstPadProbeReturn on_audio(GstPad*, GstPadProbeInfo* info, gpointer self);
  // Reads moshibin's stats and adds what is new to the metrics (moshi_ set).
  StepReading collect();

  CallRegistry& registry_;
  const char* const door_;
  const int id_;
  const uint64_t seed_;
  const std::string caller_;
  std::unique_ptr<MediaEnd> media_;
  std::function<void(const char*)> hangup_;
  GstElement* pipeline_ = nullptr;
  GstElement* moshi_ = nullptr;  // moshibin, owned by the pipeline
  std::unique_ptr<Transcript> transcript_;  // with stt-model; outlives the pipeline
  guint bus_watch_ = 0;
  gint64 started_us_ = 0;
  bool answered_ = false, stopped_ = false;
  // Streaming thread only: the pace of the caller's audio (a token bucket of audio time).
  gint64 pace_last_us_ = 0;
  GstClockTime pace_credit_ = 0;
  std::atomic<guint64> paced_out_ns_{0};  // read when the call ends
  // The steps already added to the metrics (moshilm's histogram and total when last read).
  std::vector<uint64_t> counted_steps_;
  double counted_ms_ = 0;
};

}  // namespace moshigw
