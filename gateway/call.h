// One call's media: its RTP ports and its own GStreamer pipeline, from the caller's RTP through
// moshibin (a fresh conversation with its own seed) back to the caller in the same codec.
//
//   udpsrc ! rtpjitterbuffer ! depay ! decoder ! audioconvert ! audioresample ! moshibin !
//   audioconvert ! audioresample ! encoder ! payloader (20 ms) ! valve (hold) ! udpsink
//   moshibin.text_src ! queue ! filesink (transcript) or fakesink
//
// RTP leaves from the port it arrives on (symmetric RTP): udpsrc and udpsink share one socket.
// Everything but the probes runs in the main loop.
#pragma once

#include <gst/gst.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "config.h"
#include "metrics.h"
#include "ports.h"
#include "sdp.h"

namespace moshigw {

// Sets a call's moshibin (or the gateway's first one) from the configuration, seed aside.
void configure_moshibin(GstElement* moshi, const Config& config);

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

  // True when RTP from the caller is overdue: its direction says it sends, and nothing came for
  // `timeout_us`.
  bool rtp_timed_out(gint64 now_us, gint64 timeout_us) const;
  double real_time_factor() const;

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
  static GstPadProbeReturn on_step_start(GstPad*, GstPadProbeInfo*, gpointer self);
  static GstPadProbeReturn on_step_end(GstPad*, GstPadProbeInfo* info, gpointer self);

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
  // Written by the streaming threads.
  std::atomic<gint64> last_rtp_us_{0};
  std::atomic<gint64> step_start_us_{0};
};

}  // namespace moshigw
