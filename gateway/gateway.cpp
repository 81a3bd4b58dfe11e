#include "gateway.h"

#include <arpa/inet.h>
#include <glib-unix.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/su_glib.h>
#include <sofia-sip/tport_tag.h>
#include <sofia-sip/url.h>

#include <algorithm>
#include <csignal>

#include "connections.h"
#include "sip_body.h"

namespace moshigw {

namespace {

constexpr const char* kAllow = "INVITE, ACK, BYE, CANCEL, OPTIONS";
constexpr guint kTimerMs = 250;
constexpr gint64 kShutdownGraceUs = 3 * G_USEC_PER_SEC;

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

Gateway::Gateway(Config config) : config_(std::move(config)) {
  session_id_ = g_get_real_time() / G_USEC_PER_SEC;
}

Gateway::~Gateway() {
  calls_.clear();
  if (timer_) g_source_remove(timer_);
  if (nua_) nua_destroy(nua_);
  if (root_) su_root_destroy(root_);
  su_deinit();
  if (warm_) {
    gst_element_set_state(warm_, GST_STATE_NULL);
    gst_object_unref(warm_);
  }
  metrics_server_.reset();
  if (loop_) g_main_loop_unref(loop_);
}

bool Gateway::start(std::string& error) {
  media_address_ = !config_.media_address.empty()   ? config_.media_address
                   : is_any(config_.listen_address) ? first_ipv4()
                                                    : config_.listen_address;
  ports_ = std::make_unique<PortPool>(config_.listen_address, config_.rtp_port_min,
                                      config_.rtp_port_max);
  loop_ = g_main_loop_new(nullptr, FALSE);
  fit_connections_to_files();
  if (!load_model(error) || !start_sip(error)) return false;
  sip_guard_ = std::make_unique<SipConnectionGuard>(
      config_.sip_port, config_.max_connections,
      static_cast<unsigned>(config_.tcp_idle_timeout_s * 1000));
  if (config_.metrics_port > 0) {
    metrics_server_ = std::make_unique<MetricsServer>(
        metrics_, [this] { return live(); }, config_.max_connections, config_.tcp_idle_timeout_s);
    if (!metrics_server_->listen(config_.metrics_address, config_.metrics_port, error))
      return false;
  }
  return true;
}

// The TCP listeners must never take every file handle: what the process and the calls need
// (a generous 64, and 16 a call) is set aside, and each of the two listeners gets at most half of
// the rest.
void Gateway::fit_connections_to_files() {
  const long files = raise_open_file_limit();
  if (files < 0) return;
  const long spare = files - 64 - 16L * config_.max_calls;
  const int fits = static_cast<int>(std::max(1L, spare / 2));
  g_message("at most %ld open files", files);
  if (config_.max_connections <= fits) return;
  g_message("max-connections lowered from %d to %d to fit the open-file limit of %ld",
            config_.max_connections, fits, files);
  config_.max_connections = fits;
}

// A moshibin held in PAUSED loads the model once, checks it before any call comes, and keeps the
// weights in the process-wide cache that every call's moshibin then shares.
bool Gateway::load_model(std::string& error) {
  GstElement* moshi = gst_element_factory_make("moshibin", "moshi");
  if (!moshi) {
    error = "no moshibin element: install gst-moshi, or set GST_PLUGIN_PATH to the build tree";
    return false;
  }
  warm_ = gst_pipeline_new("warm");
  gst_bin_add(GST_BIN(warm_), moshi);
  configure_moshibin(moshi, config_);
  const gint64 begin = g_get_monotonic_time();
  if (gst_element_set_state(warm_, GST_STATE_PAUSED) != GST_STATE_CHANGE_FAILURE) {
    gint loaded = 0;  // what 'auto' chose reads back once loaded
    g_object_get(moshi, "weights", &loaded, nullptr);
    g_message("model %s loaded in %.1f s (%s, %s weights)", config_.model.c_str(),
              (g_get_monotonic_time() - begin) / 1e6, config_.device.c_str(),
              kyutai::weight_format_name(static_cast<kyutai::WeightFormat>(loaded)));
    const StepReading none = read_steps(moshi);  // the histogram's buckets, from the library
    metrics_.add_steps(none.bounds_ms, none.counts, none.total_ms);
    return true;
  }
  g_autoptr(GstBus) bus = gst_element_get_bus(warm_);
  g_autoptr(GstMessage) message = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
  g_autoptr(GError) gerror = nullptr;
  g_autofree char* debug = nullptr;
  if (message) gst_message_parse_error(message, &gerror, &debug);
  error = "cannot load the model '" + config_.model +
          "': " + (gerror ? gerror->message : "unknown error") +
          (debug ? std::string(" (") + debug + ")" : "");
  return false;
}

bool Gateway::start_sip(std::string& error) {
  su_init();
  root_ = su_glib_root_create(nullptr);
  g_source_attach(su_glib_root_gsource(root_), nullptr);
  const bool v6 = config_.listen_address.find(':') != std::string::npos;
  g_autofree char* url = g_strdup_printf(
      "sip:%s%s%s:%d%s%s", v6 ? "[" : "", config_.listen_address.c_str(), v6 ? "]" : "",
      config_.sip_port, config_.transports.size() == 1 ? ";transport=" : "",
      config_.transports.size() == 1 ? config_.transports[0].c_str() : "");
  // Media off: the gateway reads the offer and writes the answer itself (sdp.h), so that it
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
  g_message("listening for SIP on %s, RTP on %s ports %d-%d, at most %d calls", url,
            media_address_.c_str(), config_.rtp_port_min, config_.rtp_port_max, config_.max_calls);
  return true;
}

void Gateway::run() {
  auto on_signal = [](gpointer self) -> gboolean {
    static_cast<Gateway*>(self)->shutdown();
    return G_SOURCE_CONTINUE;
  };
  const guint sigint = g_unix_signal_add(SIGINT, on_signal, this);
  const guint sigterm = g_unix_signal_add(SIGTERM, on_signal, this);
  timer_ = g_timeout_add(
      kTimerMs,
      [](gpointer self) -> gboolean {
        static_cast<Gateway*>(self)->check_timeouts();
        return G_SOURCE_CONTINUE;
      },
      this);
  g_main_loop_run(loop_);
  g_source_remove(sigint);
  g_source_remove(sigterm);
  g_message("stopped: %zu calls left", calls_.size());
}

void Gateway::on_event(nua_event_t event, int status, const char* phrase, nua_t*, Gateway* self,
                       nua_handle_t* nh, nua_hmagic_t*, const sip_t* sip, tagi_t tags[]) {
  const auto it = self->calls_.find(nh);
  Call* call = it == self->calls_.end() ? nullptr : it->second.get();
  switch (event) {
    case nua_i_invite:
      if (call)
        self->on_reinvite(*call, nh, sip);
      else
        self->on_invite(nh, sip);
      break;
    case nua_i_state:
      self->on_state(nh, tags);
      break;
    case nua_i_bye:
    case nua_i_cancel:
      if (call && !call->stopped()) {
        const char* reason = event == nua_i_bye ? "remote-bye" : "cancel";
        call->stop(reason);
        self->metrics_.call_ended(reason);
      }
      break;
    case nua_r_options:
      if (call && status >= 200) self->on_probe_answer(nh, *call, status, phrase);
      break;
    case nua_i_options:
      // Answered by the stack (200 OK with Allow); the handle it made is not needed.
      if (!call) nua_handle_destroy(nh);
      break;
    case nua_r_shutdown:
      if (status >= 200) g_main_loop_quit(self->loop_);
      break;
    case nua_i_error:
      g_message("SIP error %d %s", status, phrase ? phrase : "");
      break;
    default:
      break;
  }
}

void Gateway::on_invite(nua_handle_t* nh, const sip_t* sip) {
  const std::string caller = caller_of(sip);
  if (shutting_down_) return reject(nh, 503, "shutdown", caller);
  if (active_calls() >= config_.max_calls) return reject(nh, 486, "busy", caller);
  const SipBody body = sdp_of(sip);
  if (body.status) return reject(nh, body.status, "body", caller + ": " + body.reason);
  if (body.sdp.empty()) return reject(nh, 488, "sdp", caller + ": no SDP offer in the INVITE");
  const Offer offer = negotiate(body.sdp, config_.codecs, media_is_ipv6(config_));
  if (offer.status)
    return reject(nh, offer.status, offer.status == 400 ? "sdp" : "codec",
                  caller + ": " + offer.reason);
  auto ports = ports_->allocate();
  if (!ports) return reject(nh, 503, "ports", caller + ": no free RTP port pair");
  const int id = next_id_++;
  // The call lives in calls_[nh] until its dialog ends, so its handle outlives it.
  auto call = std::make_unique<Call>(id, caller, metrics_,
                                     [this, nh](int, const char* reason) { hangup(nh, reason); });
  std::string error;
  if (!call->start(config_, offer, std::move(ports), next_seed(), error)) {
    g_warning("call %d from %s: %s", id, caller.c_str(), error.c_str());
    call->stop("media-failed");
    return reject(nh, 500, "media", caller);
  }
  g_message("call %d from %s: %s/%d, RTP port %d <-> %s:%d", id, caller.c_str(), offer.codec->name,
            offer.codec->clock_rate, call->port(), offer.remote_address.c_str(), offer.remote_port);
  metrics_.call_answered();
  Call& placed = *(calls_[nh] = std::move(call));
  answer(nh, offer, placed);
}

// Hold, resume or a new address, in the same dialog and with the same codec.
void Gateway::on_reinvite(Call& call, nua_handle_t* nh, const sip_t* sip) {
  const SipBody body = sdp_of(sip);
  if (body.status) {
    g_message("call %d: re-INVITE refused: %s", call.id(), body.reason.c_str());
    return respond_error(nh, body.status);
  }
  if (body.sdp.empty() || call.stopped()) return answer(nh, call.offer(), call);
  const Offer offer = negotiate(body.sdp, {call.offer().codec->name}, media_is_ipv6(config_));
  if (offer.status) {
    g_message("call %d: re-INVITE refused: %s", call.id(), offer.reason.c_str());
    return respond_error(nh, offer.status);
  }
  // The running media filters and payloads the first payload type; another one would be
  // answered but not carried.
  if (offer.pt != call.offer().pt) {
    g_message("call %d: re-INVITE refused: payload type %d instead of %d", call.id(), offer.pt,
              call.offer().pt);
    nua_respond(nh, SIP_488_NOT_ACCEPTABLE, TAG_END());
    return;
  }
  static const char* const kDirections[] = {"inactive", "sendonly", "recvonly", "sendrecv"};
  g_message("call %d: re-INVITE, caller %s", call.id(), kDirections[offer.direction]);
  call.update(offer);
  answer(nh, offer, call);
}

void Gateway::answer(nua_handle_t* nh, const Offer& offer, Call& call) {
  const std::string sdp = answer_sdp(offer, media_address_, call.port(), session_id_ + call.id(),
                                     ++call.answer_version);
  nua_respond(nh, SIP_200_OK, SIPTAG_CONTENT_TYPE_STR("application/sdp"),
              SIPTAG_PAYLOAD_STR(sdp.c_str()), TAG_END());
}

void Gateway::reject(nua_handle_t* nh, int status, const char* reason, const std::string& detail) {
  g_message("call refused with %d %s (%s): %s", status, sip_status_phrase(status), reason,
            detail.c_str());
  metrics_.call_rejected(reason);
  respond_error(nh, status);
}

// A 415 says what the gateway takes (RFC 3261 21.4.13): SDP, with no content coding.
void Gateway::respond_error(nua_handle_t* nh, int status) {
  if (status == 415)
    nua_respond(nh, status, sip_status_phrase(status), SIPTAG_ACCEPT_STR("application/sdp"),
                SIPTAG_ACCEPT_ENCODING_STR("identity"), TAG_END());
  else
    nua_respond(nh, status, sip_status_phrase(status), TAG_END());
}

// A dialog is over (BYE either way, CANCEL, a rejected INVITE): the handle goes.
void Gateway::on_state(nua_handle_t* nh, tagi_t tags[]) {
  int state = nua_callstate_init;
  tl_gets(tags, NUTAG_CALLSTATE_REF(state), TAG_END());
  if (state != nua_callstate_terminated) return;
  const auto it = calls_.find(nh);
  if (it != calls_.end()) {
    if (!it->second->stopped()) {
      it->second->stop("terminated");
      metrics_.call_ended("terminated");
    }
    calls_.erase(it);
  }
  nua_handle_destroy(nh);
}

void Gateway::hangup(nua_handle_t* nh, const char* reason) {
  const auto it = calls_.find(nh);
  if (it == calls_.end() || it->second->stopped()) return;
  it->second->stop(reason);
  metrics_.call_ended(reason);
  nua_bye(nh, TAG_END());
}

void Gateway::check_timeouts() {
  const gint64 now = g_get_monotonic_time();
  std::vector<std::pair<nua_handle_t*, const char*>> overdue;
  for (const auto& [nh, call] : calls_) {
    if (const char* reason = call->overdue(now, config_)) overdue.emplace_back(nh, reason);
    // In the dialog: the caller answers it, or its absence shows (RFC 3261 11, RFC 5057).
    else if (call->probe_due(now, config_)) nua_options(nh, TAG_END());
  }
  for (const auto& [nh, reason] : overdue) hangup(nh, reason);
  if (sip_guard_ && ++ticks_ % 4 == 0) {
    const int closed = sip_guard_->check();
    if (closed) g_message("closed %d SIP TCP connections (idle, or past max-connections)", closed);
  }
}

void Gateway::on_probe_answer(nua_handle_t* nh, Call& call, int status, const char* phrase) {
  if (call.probe_answered(status)) return;
  g_message("call %d: the held caller answered the probe with %d %s", call.id(), status,
            phrase ? phrase : "");
  hangup(nh, "probe-failed");
}

// Every call gets a BYE; the stack shuts down once they are answered (or after a grace time).
void Gateway::shutdown() {
  if (shutting_down_) return;
  shutting_down_ = true;
  g_message("shutting down: hanging up %d calls", active_calls());
  std::vector<nua_handle_t*> handles;
  for (const auto& [nh, call] : calls_) handles.push_back(nh);
  for (nua_handle_t* nh : handles) hangup(nh, "shutdown");
  const gint64 deadline = g_get_monotonic_time() + kShutdownGraceUs;
  struct Wait {
    Gateway* self;
    gint64 deadline;
  };
  g_timeout_add_full(
      G_PRIORITY_DEFAULT, 50,
      [](gpointer data) -> gboolean {
        auto* wait = static_cast<Wait*>(data);
        if (!wait->self->calls_.empty() && g_get_monotonic_time() < wait->deadline)
          return G_SOURCE_CONTINUE;
        wait->self->finish_shutdown();
        return G_SOURCE_REMOVE;
      },
      new Wait{this, deadline}, [](gpointer data) { delete static_cast<Wait*>(data); });
}

void Gateway::finish_shutdown() {
  nua_shutdown(nua_);
  // The stack answers nua_r_shutdown within a few seconds; do not wait for ever.
  g_timeout_add_seconds(
      5,
      [](gpointer loop) -> gboolean {
        g_main_loop_quit(static_cast<GMainLoop*>(loop));
        return G_SOURCE_REMOVE;
      },
      loop_);
}

int Gateway::active_calls() const {
  return static_cast<int>(std::count_if(calls_.begin(), calls_.end(),
                                        [](const auto& c) { return !c.second->stopped(); }));
}

Metrics::Live Gateway::live() {
  Metrics::Live live;
  live.active_calls = active_calls();
  live.ready = warm_ && nua_ && !shutting_down_;
  for (const auto& [nh, call] : calls_)
    live.real_time_factor = std::max(live.real_time_factor, call->collect_steps());
  return live;
}

uint64_t Gateway::next_seed() {
  if (config_.seed >= 0) return static_cast<uint64_t>(config_.seed) + next_id_ - 1;
  return (static_cast<uint64_t>(g_random_int()) << 32) | g_random_int();
}

}  // namespace moshigw
