// One call's media: its RTP ports and its own GStreamer pipeline, from the caller's RTP through
// moshibin (a fresh conversation with its own seed) back to the caller in the same codec.
//
//   udpsrc ! rtpjitterbuffer ! depay ! decoder ! audioconvert ! audioresample ! moshibin !
//   audioconvert ! audioresample ! encoder ! payloader (20 ms) ! valve (hold) ! udpsink
//   moshibin.text_src ! queue ! filesink (transcript) or fakesink
//
// RTP leaves from the port it arrives on (symmetric RTP): udpsrc and udpsink share one socket.
// RTP is taken only from the caller: the address and port its SDP names, or else the first
// source seen (a caller behind NAT); and never faster than real time: audio beyond a 0.5 s
// burst ahead of the wall clock is dropped before Moshi, so one caller cannot take the compute
// of several. Everything but the probes runs in the main loop. Step times are moshilm's own
// (its `stats`), read in the main loop: no probe times Moshi from outside.
#pragma once

#include <gst/gst.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config.h"
#include "metrics.h"
#include "ports.h"
#include "sdp.h"

namespace moshigw {

// Sets a call's moshibin (or the gateway's first one) from the configuration, seed aside.
void configure_moshibin(GstElement* moshi, const Config& config);

// A moshibin's step statistics, from its `stats` (moshilm's, docs/ELEMENTS.md).
struct StepReading {
  guint64 steps = 0;
  double median_ms = 0;
  double real_time_factor = 0;
  double total_ms = 0;
  std::vector<double> bounds_ms;   // the histogram's buckets' upper bounds
  std::vector<uint64_t> counts;    // steps per bucket, one more than bounds_ms (+Inf)
};
StepReading read_steps(GstElement* moshi);

class Call {
 public:
  // `hangup` is called (from the main loop) when the media fails; the gateway then ends the call.
  Call(int id, std::string caller, Metrics& metrics, std::function<void(int, const char*)> hangup);
  ~Call();
  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;

  // Builds and plays the pipeline for the negotiated `offer` on `ports`.
  bool start(const Config& config, const Offer& offer, std::unique_ptr<RtpPorts> ports,
             uint64_t seed, std::string& error);
  // A new offer in the same dialog (re-INVITE): new destination, hold or resume.
  void update(const Offer& offer);
  // Stops the media and frees the ports, once; writes the call's log line.
  void stop(const char* reason);

  // Why the call must end now: "rtp-timeout" (its direction says it sends, and nothing came),
  // "hold-timeout" (on hold too long) or "probe-timeout" (a probe of the held caller went
  // unanswered until the next was due); nullptr while it may go on.
  const char* overdue(gint64 now_us, const Config& config) const;
  // On hold, a probe (OPTIONS) is due every probe interval; true marks it sent.
  bool probe_due(gint64 now_us, const Config& config);
  // The final answer to the last probe: false when it says the caller is gone (408, 481).
  bool probe_answered(int status);
  // Adds the steps moshilm made since the last look to the metrics' histogram and returns the
  // call's real-time factor (on each scrape of /metrics).
  double collect_steps();

  int id() const { return id_; }
  bool stopped() const { return stopped_; }
  int port() const { return ports_ ? ports_->port : 0; }
  const Offer& offer() const { return offer_; }
  uint64_t answer_version = 0;  // o= version of the last SDP answer

 private:
  bool build(const Config& config, std::string& error);
  void set_moshi(const Config& config);
  void watch_probes();
  static gboolean on_bus(GstBus*, GstMessage* message, gpointer self);
  static GstPadProbeReturn on_rtp(GstPad*, GstPadProbeInfo* info, gpointer self);
  static GstPadProbeReturn on_audio(GstPad*, GstPadProbeInfo* info, gpointer self);
  bool from_caller(GstBuffer* rtp);
  // Reads moshibin's stats and adds what is new to the metrics (moshi_ set).
  StepReading collect();

  const int id_;
  const std::string caller_;
  Metrics& metrics_;
  std::function<void(int, const char*)> hangup_;
  Offer offer_;
  std::unique_ptr<RtpPorts> ports_;
  uint64_t seed_ = 0;
  GstElement* pipeline_ = nullptr;
  GstElement* moshi_ = nullptr;  // moshibin, owned by the pipeline
  guint bus_watch_ = 0;
  gint64 started_us_ = 0;
  bool stopped_ = false;
  // Hold: since when the caller sends nothing (0: it sends), and the probe pending (0: none).
  gint64 held_since_us_ = 0, probe_sent_us_ = 0, last_probe_us_ = 0;
  // The RTP source taken ("address:port"), and the one the SDP names; under source_mutex_.
  std::mutex source_mutex_;
  std::string source_, expected_source_;
  // Streaming threads only: the pace of the caller's audio (a token bucket of audio time).
  gint64 pace_last_us_ = 0;
  GstClockTime pace_credit_ = 0;
  // Written by the streaming threads, read when the call ends.
  std::atomic<guint64> paced_out_ns_{0}, foreign_packets_{0};
  std::atomic<gint64> last_rtp_us_{0};
  // The steps already added to the metrics (moshilm's histogram and total when last read).
  std::vector<uint64_t> counted_steps_;
  double counted_ms_ = 0;
};

}  // namespace moshigw
