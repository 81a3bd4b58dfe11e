#include "doors/sip/sdp.h"

#include <glib.h>
#include <sofia-sip/sdp.h>
#include <sofia-sip/su_alloc.h>

#include <memory>
#include <string>

namespace moshigw {

namespace {

// The payloaders are told 20 ms exactly: telephony expects 20 ms packets, and without it one
// 80 ms Mimi frame would leave as one packet.
#define PTIME_20 " min-ptime=20000000 max-ptime=20000000"

const Codec kCodecs[] = {
    {"opus", 48000, 2, 48000, -1, "OPUS", "rtpopusdepay ! opusdec",
     "opusenc frame-size=20 ! rtpopuspay pt=%d"},
    {"G722", 8000, 1, 16000, 9, "G722", "rtpg722depay ! avdec_g722",
     "avenc_g722 ! rtpg722pay pt=%d" PTIME_20},
    {"PCMU", 8000, 1, 8000, 0, "PCMU", "rtppcmudepay ! mulawdec",
     "mulawenc ! rtppcmupay pt=%d" PTIME_20},
    {"PCMA", 8000, 1, 8000, 8, "PCMA", "rtppcmadepay ! alawdec",
     "alawenc ! rtppcmapay pt=%d" PTIME_20},
};

// Owns a Sofia memory home and the parser allocated in it.
struct Parsed {
  su_home_t home[1] = {SU_HOME_INIT(home)};
  sdp_parser_t* parser = nullptr;
  ~Parsed() {
    if (parser) sdp_parser_free(parser);
    su_home_deinit(home);
  }
};

Offer reject(int status, const std::string& reason) {
  Offer offer;
  offer.status = status;
  offer.reason = reason;
  return offer;
}

// The offer's payload type for `codec` in media `m`, or -1.
int find_payload(const sdp_media_t* m, const Codec& codec) {
  for (const sdp_rtpmap_t* rm = m->m_rtpmaps; rm; rm = rm->rm_next) {
    if (!rm->rm_encoding || g_ascii_strcasecmp(rm->rm_encoding, codec.name) != 0) continue;
    if (rm->rm_rate == static_cast<unsigned long>(codec.clock_rate)) return rm->rm_pt;
  }
  return -1;
}


// Empty if RTP can be sent to connection `c` from a socket of the gateway's family (`ipv6`);
// else why not. Host names would need a resolver in the media path, so only literals are taken.
std::string unplaceable(const sdp_connection_t* c, bool ipv6) {
  if (!c || !c->c_address) return "no connection address";
  const std::string address = c->c_address;
  if (!g_hostname_is_ip_address(address.c_str()))
    return "the connection address '" + address + "' is not an IP address";
  const bool v6 = address.find(':') != std::string::npos;
  if (v6 != ipv6)
    return std::string("the connection address '") + address + "' is " + (v6 ? "IPv6" : "IPv4") +
           " and the gateway's media are " + (ipv6 ? "IPv6" : "IPv4");
  return "";
}

// Fills codec, payload type, address and direction from audio media `m`; false if unusable
// (with offer.reason set when the stream had a codec but an address the gateway cannot reach).
bool take_audio(const sdp_session_t* s, const sdp_media_t* m,
                const std::vector<std::string>& preference, bool ipv6, Offer& offer) {
  if (m->m_type != sdp_media_audio || m->m_proto != sdp_proto_rtp || m->m_port == 0) return false;
  const sdp_connection_t* c = m->m_connections ? m->m_connections : s->sdp_connection;
  if (!c || !c->c_address || m->m_port > 65535) return false;
  const std::string why = unplaceable(c, ipv6);
  if (!why.empty()) {
    offer.reason = why;
    return false;
  }
  for (const std::string& name : preference) {
    const Codec* codec = find_codec(name);
    const int pt = codec ? find_payload(m, *codec) : -1;
    if (pt < 0) continue;
    offer.codec = codec;
    offer.pt = pt;
    offer.remote_address = c->c_address;
    offer.remote_port = static_cast<int>(m->m_port);
    // Sofia's parser gives each media its mode, inheriting a session-level
    // a=sendonly/recvonly/inactive where the media states none.
    offer.direction = static_cast<Direction>(m->m_mode);
    // RFC 2543 hold: the connection address 0.0.0.0.
    if (offer.remote_address == "0.0.0.0") offer.direction = kInactive;
    return true;
  }
  return false;
}

}  // namespace

const Codec* find_codec(const std::string& name) {
  for (const Codec& c : kCodecs)
    if (g_ascii_strcasecmp(c.name, name.c_str()) == 0) return &c;
  return nullptr;
}

Offer negotiate(const std::string& sdp, const std::vector<std::string>& preference, bool ipv6) {
  Parsed parsed;
  parsed.parser = sdp_parse(parsed.home, sdp.data(), static_cast<issize_t>(sdp.size()), 0);
  const sdp_session_t* s = sdp_session(parsed.parser);
  if (!s) {
    const char* error = sdp_parsing_error(parsed.parser);
    return reject(400, std::string("malformed SDP: ") + (error ? error : "unknown error"));
  }
  Offer offer;
  for (const sdp_media_t* m = s->sdp_media; m; m = m->m_next) {
    MediaLine line;
    line.type = m->m_type_name ? m->m_type_name : "audio";
    line.proto = m->m_proto_name ? m->m_proto_name : "RTP/AVP";
    // RTP formats are parsed into rtpmaps, others stay in the format list.
    line.format = m->m_rtpmaps                         ? std::to_string(m->m_rtpmaps->rm_pt)
                  : m->m_format && m->m_format->l_text ? m->m_format->l_text
                                                       : "0";
    line.chosen = !offer.codec && take_audio(s, m, preference, ipv6, offer);
    offer.lines.push_back(line);
  }
  if (!offer.codec && !offer.reason.empty()) return reject(488, offer.reason);
  if (!offer.codec) return reject(488, "no RTP/AVP audio stream with a codec of the gateway");
  return offer;
}

std::string answer_sdp(const Offer& offer, const std::string& address, int port,
                       uint64_t session_id, uint64_t version) {
  static const char* const kAnswerDirection[] = {"inactive", "sendonly", "recvonly", "sendrecv"};
  const char* ip = address.find(':') != std::string::npos ? "IP6" : "IP4";
  g_autoptr(GString) out = g_string_new(nullptr);
  g_string_append_printf(out,
                         "v=0\r\no=moshi-gateway %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT
                         " IN %s %s\r\ns=moshi-gateway\r\nc=IN %s %s\r\nt=0 0\r\n",
                         session_id, version, ip, address.c_str(), ip, address.c_str());
  for (const MediaLine& line : offer.lines) {
    if (!line.chosen) {
      g_string_append_printf(out, "m=%s 0 %s %s\r\n", line.type.c_str(), line.proto.c_str(),
                             line.format.c_str());
      continue;
    }
    const Codec& c = *offer.codec;
    g_string_append_printf(out, "m=audio %d RTP/AVP %d\r\na=rtpmap:%d %s/%d", port, offer.pt,
                           offer.pt, c.name, c.clock_rate);
    if (c.channels > 1) g_string_append_printf(out, "/%d", c.channels);
    // The caller's direction, mirrored: what it only sends, the gateway only receives.
    const unsigned mirrored = ((offer.direction & 1) << 1) | ((offer.direction & 2) >> 1);
    g_string_append_printf(out, "\r\na=ptime:20\r\na=%s\r\n", kAnswerDirection[mirrored]);
  }
  return out->str;
}

}  // namespace moshigw
