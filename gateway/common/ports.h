// RTP ports from the configured range: a call holds an even port for RTP and the next one for
// RTCP, as bound sockets, so no other call or process can take them while the call lasts.
#pragma once

#include <gio/gio.h>

#include <memory>
#include <string>

namespace moshigw {

// A bound RTP/RTCP socket pair, closed when destroyed.
struct RtpPorts {
  RtpPorts() = default;
  ~RtpPorts();
  RtpPorts(const RtpPorts&) = delete;
  RtpPorts& operator=(const RtpPorts&) = delete;
  GSocket* rtp = nullptr;
  GSocket* rtcp = nullptr;
  int port = 0;  // the RTP port; RTCP is port + 1
};

// The RTP/RTCP pairs of the port range [min, max]: RTP on an even port, RTCP on the next odd
// one (RFC 3550 11). The one place that knows the rule.
class PortPairs {
 public:
  PortPairs(int min, int max);
  int count() const { return count_; }                        // 0 when the range holds no pair
  int rtp_port(int pair) const { return first_ + 2 * pair; }  // pair in [0, count)

 private:
  int first_, count_;
};

class PortPool {
 public:
  PortPool(std::string address, int min, int max);
  // The next free pair after the last one given (so a port just freed rests for a while), or
  // nullptr when every pair of the range is taken.
  std::unique_ptr<RtpPorts> allocate();

 private:
  std::string address_;
  PortPairs pairs_;
  int next_ = 0;
};

}  // namespace moshigw
