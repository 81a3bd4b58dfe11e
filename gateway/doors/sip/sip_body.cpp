#include "doors/sip/sip_body.h"

#include <glib.h>
#include <sofia-sip/msg_mime.h>
#include <sofia-sip/msg_protos.h>
#include <sofia-sip/su_alloc.h>

namespace moshigw {

namespace {

SipBody refuse(int status, std::string reason) {
  SipBody body;
  body.status = status;
  body.reason = std::move(reason);
  return body;
}

bool is_type(const msg_content_type_t* c, const char* type) {
  return c && c->c_type && g_ascii_strcasecmp(c->c_type, type) == 0;
}

// No coding, or only "identity": the gateway decodes none (RFC 3261 20.12).
bool plain_coding(const msg_content_encoding_t* e, std::string& coding) {
  for (; e; e = e->k_next)
    for (const msg_param_t* item = e->k_items; item && *item; ++item)
      if (g_ascii_strcasecmp(*item, "identity") != 0) {
        coding = *item;
        return false;
      }
  return true;
}

std::string text_of(const msg_payload_t* pl) {
  return pl && pl->pl_data ? std::string(pl->pl_data, pl->pl_len) : std::string();
}

// The first application/sdp part of a multipart body (RFC 5621), or a refusal.
SipBody from_multipart(const sip_t* sip) {
  su_home_t home[1] = {SU_HOME_INIT(home)};
  // The parser may write into the payload it splits: it gets a copy.
  msg_payload_t* copy = msg_payload_dup(home, sip->sip_payload);
  msg_multipart_t* parts = copy ? msg_multipart_parse(home, sip->sip_content_type, copy) : nullptr;
  SipBody body = refuse(415, "a multipart body without an application/sdp part");
  if (!parts) body = refuse(400, "a malformed multipart body");
  for (msg_multipart_t* part = parts; part; part = part->mp_next) {
    std::string coding;
    if (!is_type(part->mp_content_type, "application/sdp")) continue;
    if (!plain_coding(part->mp_content_encoding, coding)) {
      body = refuse(415, "an SDP part with the content coding '" + coding + "'");
      break;
    }
    body = SipBody();
    body.sdp = text_of(part->mp_payload);
    break;
  }
  su_home_deinit(home);
  return body;
}

}  // namespace

SipBody sdp_of(const sip_t* sip) {
  if (!sip || !sip->sip_payload || sip->sip_payload->pl_len == 0) return SipBody();
  const msg_content_type_t* type = sip->sip_content_type;
  if (!type || !type->c_type) return refuse(415, "a body without a Content-Type");
  std::string coding;
  if (!plain_coding(sip->sip_content_encoding, coding))
    return refuse(415, "a body with the content coding '" + coding + "'");
  if (is_type(type, "application/sdp")) {
    SipBody body;
    body.sdp = text_of(sip->sip_payload);
    return body;
  }
  if (g_ascii_strncasecmp(type->c_type, "multipart/", 10) == 0) return from_multipart(sip);
  return refuse(415, std::string("a body of type '") + type->c_type + "'");
}

}  // namespace moshigw
