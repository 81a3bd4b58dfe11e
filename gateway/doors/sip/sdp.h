// Offer/answer for one audio stream (RFC 3264), on Sofia-SIP's SDP parser: which codec of the
// caller's offer the gateway takes, where the caller wants RTP, and the SDP of the answer.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace moshigw {

// A codec the gateway can speak: its SDP name and clock, and the GStreamer elements that decode
// its RTP and encode Moshi's voice into 20 ms packets.
struct Codec {
  const char* name;       // SDP encoding name, compared without case
  int clock_rate;         // RTP clock rate (8000 for G.722, whose audio is 16 kHz)
  int channels;           // channels in the SDP rtpmap (Opus is always 2 there)
  int audio_rate;         // rate of the decoded audio and of the encoder's input
  int static_pt;          // static payload type, -1 for a dynamic one
  const char* caps_name;  // encoding-name in the RTP caps
  const char* depay;      // depayloader ! decoder
  const char* pay;        // encoder ! payloader, with %d for the payload type
};

// The four codecs: opus, G722, PCMU, PCMA. nullptr if `name` is none of them.
const Codec* find_codec(const std::string& name);

// SDP direction, as seen from the side that wrote it (the bits of Sofia's sdp_mode_t).
enum Direction : unsigned { kInactive = 0, kSendOnly = 1, kRecvOnly = 2, kSendRecv = 3 };

// One m= line of the offer, kept to answer it (RFC 3264 answers every line, in order).
struct MediaLine {
  std::string type, proto, format;  // m=<type> <port> <proto> <first format>
  bool chosen = false;              // the audio stream the gateway answers
};

struct Offer {
  int status = 0;      // 0 on success, else the SIP status to reject with (400 or 488)
  std::string reason;  // why it was rejected, for the log and a Warning
  const Codec* codec = nullptr;
  int pt = 0;                  // the caller's payload type for the codec
  std::string remote_address;  // where the caller wants RTP
  int remote_port = 0;
  Direction direction = kSendRecv;  // the caller's (hold: sendonly or inactive)
  std::vector<MediaLine> lines;
};

// Parses `sdp` with Sofia-SIP and picks the first codec of `preference` the offer holds, on an
// audio stream whose address is an IP literal of the gateway's family (`ipv6` or IPv4).
Offer negotiate(const std::string& sdp, const std::vector<std::string>& preference,
                bool ipv6 = false);

// The answer: `address`:`port` for RTP, the chosen codec only, 20 ms packets, and the direction
// that mirrors the caller's (sendonly -> recvonly, inactive -> inactive).
std::string answer_sdp(const Offer& offer, const std::string& address, int port,
                       uint64_t session_id, uint64_t version);

}  // namespace moshigw
