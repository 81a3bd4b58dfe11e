#include "doors/sip/sip_door.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/su_glib.h>
#include <sofia-sip/tport_tag.h>
#include <sofia-sip/url.h>

#include <utility>
#include <vector>

#include "doors/sip/sip_body.h"

namespace moshigw {

namespace {

constexpr const char* kAllow = "INVITE, ACK, BYE, CANCEL, OPTIONS";

bool is_any(const std::string& address) {
  return address == "0.0.0.0" || address == "::";
}

// The first IPv4 address that is up and not loopback, for SDP when listening on every address.
std::string first_ipv4() {
  struct ifaddrs* list = nullptr;
  std::string found = "127.0.0.1";
  if (getifaddrs(&list) != 0) return found;
  for (struct ifaddrs* i = list; i; i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET) continue;
    char text[INET_ADDRSTRLEN];
    const auto* in = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
    inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
    if (g_str_has_prefix(text, "127.")) continue;
    found = text;
    break;
  }
  freeifaddrs(list);
  return found;
}

std::string caller_of(const sip_t* sip) {
  su_home_t home[1] = {SU_HOME_INIT(home)};
  const char* url = sip && sip->sip_from ? url_as_string(home, sip->sip_from->a_url) : nullptr;
  std::string caller = url ? url : "unknown";
  su_home_deinit(home);
  return caller;
}

// The media sockets' family, which an offer's address must match.
bool media_is_ipv6(const Config& config) {
  return config.listen_address.find(':') != std::string::npos;
}

}  // namespace

SipDoor::SipDoor(CallRegistry& registry) : registry_(registry), config_(registry.config()) {
  session_id_ = g_get_real_time() / G_USEC_PER_SEC;
}

SipDoor::~SipDoor() {
  if (close_timer_) g_source_remove(close_timer_);  // the stack answered before it fired
  dialogs_.clear();
  if (nua_ && !shutting_down_) {
    // Never closed: the gateway failed to start after this door opened (another door's port was
    // taken, say). Sofia aborts on destroying a stack that was never shut down, so shut it down
    // here, running the main context (where its events arrive) for at most 5 s. A door that was
    // closed already waited in close(): it does not wait twice.
    shutting_down_ = true;
    nua_shutdown(nua_);
    const gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
    while (!shut_down_ && g_get_monotonic_time() < deadline)
      if (!g_main_context_iteration(nullptr, FALSE)) g_usleep(1000);
  }
  // A stack whose shutdown did not finish (a caller that never answered its BYE) is left to the
  // process's exit: Sofia refuses to destroy it.
  if (nua_ && shut_down_) nua_destroy(nua_);
  if (root_) su_root_destroy(root_);
  su_deinit();
}

bool SipDoor::open(std::string& error) {
  media_address_ = !config_.media_address.empty()   ? config_.media_address
                   : is_any(config_.listen_address) ? first_ipv4()
                                                    : config_.listen_address;
  ports_ = std::make_unique<PortPool>(config_.listen_address, config_.rtp_port_min,
                                      config_.rtp_port_max);
  su_init();
  root_ = su_glib_root_create(nullptr);
  g_source_attach(su_glib_root_gsource(root_), nullptr);
  const bool v6 = config_.listen_address.find(':') != std::string::npos;
  g_autofree char* url = g_strdup_printf(
      "sip:%s%s%s:%d%s%s", v6 ? "[" : "", config_.listen_address.c_str(), v6 ? "]" : "",
      config_.sip_port, config_.transports.size() == 1 ? ";transport=" : "",
      config_.transports.size() == 1 ? config_.transports[0].c_str() : "");
  // Media off: the door reads the offer and writes the answer itself (sdp.h), so that it
  // chooses the codec and the RTP port of each call.
  // TCP connections idle for tcp-idle-timeout, or stuck in the middle of a message as long, are
  // closed by the transport layer (Sofia-SIP keeps them for ever by default).
  const auto idle_ms = static_cast<unsigned>(config_.tcp_idle_timeout_s * 1000);
  nua_ = nua_create(root_, on_event, this, NUTAG_URL(url), NUTAG_MEDIA_ENABLE(0),
                    SIPTAG_USER_AGENT_STR("moshi-gateway/" GATEWAY_VERSION),
                    SIPTAG_ALLOW_STR(kAllow), TPTAG_IDLE(idle_ms), TPTAG_TIMEOUT(idle_ms),
                    TAG_END());
  if (!nua_) {
    error = std::string("cannot listen for SIP on ") + url + " (address or port in use?)";
    return false;
  }
  sip_guard_ = std::make_unique<SipConnectionGuard>(config_.sip_port, config_.max_connections,
                                                    idle_ms);
  g_message("listening for SIP on %s, RTP on %s ports %d-%d, at most %d calls", url,
            media_address_.c_str(), config_.rtp_port_min, config_.rtp_port_max, config_.max_calls);
  return true;
}

void SipDoor::on_event(nua_event_t event, int status, const char* phrase, nua_t*, SipDoor* self,
                       nua_handle_t* nh, nua_hmagic_t*, const sip_t* sip, tagi_t tags[]) {
  const auto it = self->dialogs_.find(nh);
  Dialog* dialog = it == self->dialogs_.end() ? nullptr : &it->second;
  switch (event) {
    case nua_i_invite:
      if (dialog)
        self->on_reinvite(*dialog, nh, sip);
      else
        self->on_invite(nh, sip);
      break;
    case nua_i_state:
      self->on_state(nh, tags);
      break;
    case nua_i_bye:
    case nua_i_cancel:
      self->on_ended(dialog, event == nua_i_bye ? "remote-bye" : "cancel");
      break;
    case nua_r_options:
      if (dialog && status >= 200) self->on_probe_answer(nh, *dialog, status, phrase);
      break;
    case nua_i_options:
      // Answered by the stack (200 OK with Allow); the handle it made is not needed.
      if (!dialog) nua_handle_destroy(nh);
      break;
    case nua_r_shutdown:
      if (status >= 200) self->shut_down_ = true;
      if (status >= 200 && self->closed_) std::exchange(self->closed_, nullptr)();
      break;
    case nua_i_error:
      g_message("SIP error %d %s", status, phrase ? phrase : "");
      break;
    default:
      break;
  }
}

void SipDoor::on_ended(Dialog* dialog, const char* reason) {
  if (dialog && !dialog->call->stopped()) dialog->call->stop(reason);
}

void SipDoor::on_invite(nua_handle_t* nh, const sip_t* sip) {
  const std::string caller = caller_of(sip);
  if (const char* refusal = registry_.refusal())
    return reject(nh, g_str_equal(refusal, "busy") ? 486 : 503, refusal, caller);
  const SipBody body = sdp_of(sip);
  if (body.status) return reject(nh, body.status, "body", caller + ": " + body.reason);
  if (body.sdp.empty()) return reject(nh, 488, "sdp", caller + ": no SDP offer in the INVITE");
  const Offer offer = negotiate(body.sdp, config_.codecs, media_is_ipv6(config_));
  if (offer.status)
    return reject(nh, offer.status, offer.status == 400 ? "sdp" : "codec",
                  caller + ": " + offer.reason);
  auto ports = ports_->allocate();
  if (!ports) return reject(nh, 503, "ports", caller + ": no free RTP port pair");
  auto media = std::make_unique<RtpMedia>(offer, std::move(ports));
  RtpMedia* rtp = media.get();
  // The call lives in dialogs_[nh] until its dialog ends, so its handle outlives it.
  auto call = std::make_unique<Call>(registry_, name(), caller, std::move(media),
                                     [this, nh](const char* reason) { hangup(nh, reason); });
  std::string error;
  if (!call->start(error)) {
    g_warning("call %d from %s: %s", call->id(), caller.c_str(), error.c_str());
    call->stop("media-failed");
    return reject(nh, 500, "media", caller);
  }
  g_message("call %d from %s: %s, RTP port %d <-> %s:%d", call->id(), caller.c_str(),
            rtp->codec().c_str(), rtp->port(), offer.remote_address.c_str(), offer.remote_port);
  Dialog& placed = dialogs_[nh] = Dialog{std::move(call), rtp};
  answer(nh, offer, placed);
}

// Hold, resume or a new address, in the same dialog and with the same codec.
void SipDoor::on_reinvite(Dialog& dialog, nua_handle_t* nh, const sip_t* sip) {
  const Call& call = *dialog.call;
  RtpMedia& rtp = *dialog.rtp;
  const SipBody body = sdp_of(sip);
  if (body.status) {
    g_message("call %d: re-INVITE refused: %s", call.id(), body.reason.c_str());
    return respond_error(nh, body.status);
  }
  if (body.sdp.empty() || call.stopped()) return answer(nh, rtp.offer(), dialog);
  const Offer offer = negotiate(body.sdp, {rtp.offer().codec->name}, media_is_ipv6(config_));
  if (offer.status) {
    g_message("call %d: re-INVITE refused: %s", call.id(), offer.reason.c_str());
    return respond_error(nh, offer.status);
  }
  // The running media filters and payloads the first payload type; another one would be
  // answered but not carried.
  if (offer.pt != rtp.offer().pt) {
    g_message("call %d: re-INVITE refused: payload type %d instead of %d", call.id(), offer.pt,
              rtp.offer().pt);
    nua_respond(nh, SIP_488_NOT_ACCEPTABLE, TAG_END());
    return;
  }
  static const char* const kDirections[] = {"inactive", "sendonly", "recvonly", "sendrecv"};
  g_message("call %d: re-INVITE, caller %s", call.id(), kDirections[offer.direction]);
  rtp.update(offer);
  answer(nh, offer, dialog);
}

void SipDoor::answer(nua_handle_t* nh, const Offer& offer, Dialog& dialog) {
  const std::string sdp = answer_sdp(offer, media_address_, dialog.rtp->port(),
                                     session_id_ + dialog.call->id(), ++dialog.rtp->answer_version);
  nua_respond(nh, SIP_200_OK, SIPTAG_CONTENT_TYPE_STR("application/sdp"),
              SIPTAG_PAYLOAD_STR(sdp.c_str()), TAG_END());
}

void SipDoor::reject(nua_handle_t* nh, int status, const char* reason, const std::string& detail) {
  g_message("call refused with %d %s (%s): %s", status, sip_status_phrase(status), reason,
            detail.c_str());
  registry_.metrics().call_rejected(name(), reason);
  respond_error(nh, status);
}

// A 415 says what the gateway takes (RFC 3261 21.4.13): SDP, with no content coding.
void SipDoor::respond_error(nua_handle_t* nh, int status) {
  if (status == 415)
    nua_respond(nh, status, sip_status_phrase(status), SIPTAG_ACCEPT_STR("application/sdp"),
                SIPTAG_ACCEPT_ENCODING_STR("identity"), TAG_END());
  else
    nua_respond(nh, status, sip_status_phrase(status), TAG_END());
}

// A dialog is over (BYE either way, CANCEL, a rejected INVITE): the handle goes.
void SipDoor::on_state(nua_handle_t* nh, tagi_t tags[]) {
  int state = nua_callstate_init;
  tl_gets(tags, NUTAG_CALLSTATE_REF(state), TAG_END());
  if (state != nua_callstate_terminated) return;
  const auto it = dialogs_.find(nh);
  if (it != dialogs_.end()) {
    on_ended(&it->second, "terminated");
    dialogs_.erase(it);
  }
  nua_handle_destroy(nh);
}

void SipDoor::hangup(nua_handle_t* nh, const char* reason) {
  const auto it = dialogs_.find(nh);
  if (it == dialogs_.end() || it->second.call->stopped()) return;
  it->second.call->stop(reason);
  nua_bye(nh, TAG_END());
}

void SipDoor::tick(gint64 now) {
  std::vector<std::pair<nua_handle_t*, const char*>> overdue;
  for (auto& [nh, dialog] : dialogs_) {
    if (const char* reason = dialog.call->overdue(now)) overdue.emplace_back(nh, reason);
    // In the dialog: the caller answers it, or its absence shows (RFC 3261 11, RFC 5057).
    else if (!dialog.call->stopped() && dialog.rtp->probe_due(now, config_))
      nua_options(nh, TAG_END());
  }
  for (const auto& [nh, reason] : overdue) hangup(nh, reason);
  if (sip_guard_ && ++ticks_ % 4 == 0) {
    const int closed = sip_guard_->check();
    if (closed) g_message("closed %d SIP TCP connections (idle, or past max-connections)", closed);
  }
}

void SipDoor::on_probe_answer(nua_handle_t* nh, Dialog& dialog, int status, const char* phrase) {
  if (dialog.rtp->probe_answered(status)) return;
  g_message("call %d: the held caller answered the probe with %d %s", dialog.call->id(), status,
            phrase ? phrase : "");
  hangup(nh, "probe-failed");
}

void SipDoor::hang_up_all() {
  std::vector<nua_handle_t*> handles;
  for (const auto& [nh, dialog] : dialogs_) handles.push_back(nh);
  for (nua_handle_t* nh : handles) hangup(nh, "shutdown");
}

bool SipDoor::idle() const {
  return dialogs_.empty();
}

void SipDoor::close(std::function<void()> done) {
  closed_ = std::move(done);
  shutting_down_ = true;
  nua_shutdown(nua_);
  // The stack answers nua_r_shutdown within a few seconds; do not wait for ever.
  close_timer_ = g_timeout_add_seconds(
      5,
      [](gpointer self) -> gboolean {
        auto* door = static_cast<SipDoor*>(self);
        door->close_timer_ = 0;
        if (door->closed_) std::exchange(door->closed_, nullptr)();
        return G_SOURCE_REMOVE;
      },
      this);
}

}  // namespace moshigw
