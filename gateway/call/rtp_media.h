// A SIP call's media end: its RTP port pair and the RTP elements around moshibin.
//
//   udpsrc ! rtpjitterbuffer ! depay ! decoder ! audioconvert ! audioresample ! [moshibin] !
//   audioconvert ! audioresample ! encoder ! payloader (20 ms) ! valve (hold) ! udpsink
//
// RTP leaves from the port it arrives on (symmetric RTP): udpsrc and udpsink share one socket.
// RTP is taken only from the caller: the address and port its SDP names, or else the first
// source seen (a caller behind NAT). The SIP door drives hold, resume and the probes of a held
// caller through it.
#pragma once

#include <gst/gst.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "call/media_end.h"
#include "common/ports.h"
#include "doors/sip/sdp.h"

namespace moshigw {

class RtpMedia : public MediaEnd {
 public:
  RtpMedia(const Offer& offer, std::unique_ptr<RtpPorts> ports);

  std::string source_description() const override;
  std::string sink_description() const override;
  bool attach(GstElement* pipeline, std::string& error) override;
  void detach() override;
  // "rtp-timeout" (its direction says it sends, and nothing came), "hold-timeout" (on hold too
  // long) or "probe-timeout" (a probe of the held caller went unanswered until the next was due).
  const char* overdue(gint64 now_us, gint64 started_us, const Config& config) const override;
  std::string codec() const override;
  std::string dropped() const override;

  // A new offer in the same dialog (re-INVITE): new destination, hold or resume.
  void update(const Offer& offer);
  // On hold, a probe (OPTIONS) is due every probe interval; true marks it sent.
  bool probe_due(gint64 now_us, const Config& config);
  // The final answer to the last probe: false when it says the caller is gone (408, 481).
  bool probe_answered(int status);

  int port() const { return ports_ ? ports_->port : 0; }
  const Offer& offer() const { return offer_; }
  uint64_t answer_version = 0;  // o= version of the last SDP answer

 private:
  static GstPadProbeReturn on_rtp(GstPad*, GstPadProbeInfo* info, gpointer self);
  bool from_caller(GstBuffer* rtp);

  Offer offer_;
  std::unique_ptr<RtpPorts> ports_;
  GstElement* pipeline_ = nullptr;  // the call's, while attached
  // Hold: since when the caller sends nothing (0: it sends), and the probe pending (0: none).
  gint64 held_since_us_ = 0, probe_sent_us_ = 0, last_probe_us_ = 0;
  // The RTP source taken ("address:port"), and the one the SDP names; under source_mutex_.
  std::mutex source_mutex_;
  std::string source_, expected_source_;
  // Written by the streaming threads, read when the call ends.
  std::atomic<guint64> foreign_packets_{0};
  std::atomic<gint64> last_rtp_us_{0};
};

}  // namespace moshigw
