// The SDP of an INVITE's body (RFC 3261 section 8.2.3, RFC 5621): application/sdp, alone or as a
// part of a multipart body, with no content coding. Anything else is refused with 415, which
// tells the caller what the gateway accepts.
#pragma once

#include <string>

#include <sofia-sip/sip.h>

namespace moshigw {

struct SipBody {
  int status = 0;      // 0: `sdp` holds the offer (empty when the INVITE has no body)
  std::string reason;  // why it was refused, for the log
  std::string sdp;
};

SipBody sdp_of(const sip_t* sip);

}  // namespace moshigw
