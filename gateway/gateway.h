// The SIP side: a Sofia-SIP user agent (NUA) in the GLib main loop that answers INVITEs, one
// Call per dialog, and ends them on BYE, CANCEL, RTP time-out, media errors and shutdown.
#pragma once

#include <glib.h>
#include <gst/gst.h>

#include <map>
#include <memory>
#include <string>

#include "call.h"
#include "config.h"
#include "connections.h"
#include "metrics.h"
#include "ports.h"

// Sofia's callbacks carry the Gateway as their magic.
namespace moshigw {
class Gateway;
}
#define NUA_MAGIC_T moshigw::Gateway
#include <sofia-sip/nua.h>

namespace moshigw {

class Gateway {
 public:
  explicit Gateway(Config config);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Loads the model, binds SIP and the metrics endpoint. False with `error` on failure.
  bool start(std::string& error);
  // Runs until SIGINT or SIGTERM, then hangs up every call and returns.
  void run();

 private:
  static void on_event(nua_event_t event, int status, const char* phrase, nua_t* nua, Gateway* self,
                       nua_handle_t* nh, nua_hmagic_t*, const sip_t* sip, tagi_t tags[]);
  void fit_connections_to_files();
  bool load_model(std::string& error);
  bool start_sip(std::string& error);
  void on_invite(nua_handle_t* nh, const sip_t* sip);
  void on_reinvite(Call& call, nua_handle_t* nh, const sip_t* sip);
  void on_state(nua_handle_t* nh, tagi_t tags[]);
  void reject(nua_handle_t* nh, int status, const char* reason, const std::string& detail);
  void respond_error(nua_handle_t* nh, int status);
  void on_probe_answer(nua_handle_t* nh, Call& call, int status, const char* phrase);
  void answer(nua_handle_t* nh, const Offer& offer, Call& call);
  // Ends the call of dialog `nh` with a BYE, unless it has ended already.
  void hangup(nua_handle_t* nh, const char* reason);
  void check_timeouts();
  void shutdown();
  void finish_shutdown();
  Metrics::Live live();  // also collects the calls' steps into the metrics
  int active_calls() const;
  uint64_t next_seed();

  Config config_;
  std::string media_address_;
  GMainLoop* loop_ = nullptr;
  su_root_t* root_ = nullptr;
  nua_t* nua_ = nullptr;
  GstElement* warm_ = nullptr;  // a moshibin in PAUSED: keeps the shared model loaded
  Metrics metrics_;
  std::unique_ptr<MetricsServer> metrics_server_;
  std::unique_ptr<PortPool> ports_;
  std::unique_ptr<SipConnectionGuard> sip_guard_;
  unsigned ticks_ = 0;
  std::map<nua_handle_t*, std::unique_ptr<Call>> calls_;
  int next_id_ = 1;
  uint64_t session_id_ = 0;
  bool shutting_down_ = false;
  guint timer_ = 0;
};

}  // namespace moshigw
