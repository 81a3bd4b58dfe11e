// The two ends of a call's pipeline that face the caller, around the moshibin every call has.
// A SIP call's ends are RTP sockets (rtp_media.h); a socket door's are appsrc and appsink, fed and
// drained by the door (app_media.h). The Call (call.h) owns its end and everything in between.
#pragma once

#include <gst/gst.h>

#include <string>

#include "common/config.h"

namespace moshigw {

class MediaEnd {
 public:
  virtual ~MediaEnd() = default;
  // gst-launch text of the caller's audio up to moshibin's sink ("... ! audioresample"), and of
  // Moshi's voice from moshibin's src to the caller ("audioconvert ! ... ! udpsink").
  virtual std::string source_description() const = 0;
  virtual std::string sink_description() const = 0;
  // Binds the parsed pipeline's elements (sockets, callbacks); false with `error` if it cannot.
  virtual bool attach(GstElement* pipeline, std::string& error) = 0;
  // Called once the pipeline has stopped: frees what the end holds (RTP ports).
  virtual void detach() {}
  // Why the call must end now for want of the caller's audio ("rtp-timeout", ...), else nullptr.
  virtual const char* overdue(gint64 now_us, gint64 started_us, const Config& config) const = 0;
  // The codec as the summary line names it ("PCMU/8000"), and what the end dropped, as the
  // line's last clauses (", 2 RTP packets from other sources dropped").
  virtual std::string codec() const = 0;
  virtual std::string dropped() const = 0;
};

}  // namespace moshigw
