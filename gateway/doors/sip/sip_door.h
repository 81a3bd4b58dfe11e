// The SIP door: a Sofia-SIP user agent (NUA) in the GLib main loop that answers INVITEs, one
// Call per dialog with an RTP media end (call/rtp_media.h), and ends them on BYE, CANCEL, RTP
// time-out, a held caller that is gone, media errors and shutdown.
#pragma once

#include <glib.h>
#include <gst/gst.h>

#include <map>
#include <memory>
#include <string>

#include "call/call.h"
#include "call/registry.h"
#include "call/rtp_media.h"
#include "common/connections.h"
#include "common/ports.h"
#include "doors/door.h"

// Sofia's callbacks carry the door as their magic.
namespace moshigw {
class SipDoor;
}
#define NUA_MAGIC_T moshigw::SipDoor
#include <sofia-sip/nua.h>

namespace moshigw {

class SipDoor : public Door {
 public:
  explicit SipDoor(CallRegistry& registry);
  ~SipDoor() override;
  SipDoor(const SipDoor&) = delete;
  SipDoor& operator=(const SipDoor&) = delete;

  const char* name() const override { return "sip"; }
  bool open(std::string& error) override;
  void tick(gint64 now_us) override;
  void hang_up_all() override;
  bool idle() const override;
  // Shuts the stack down: it answers within a few seconds (done is called then, or after 5 s).
  void close(std::function<void()> done) override;

 private:
  // A dialog's call and its RTP end (owned by the call).
  struct Dialog {
    std::unique_ptr<Call> call;
    RtpMedia* rtp = nullptr;
  };
  static void on_event(nua_event_t event, int status, const char* phrase, nua_t* nua, SipDoor* self,
                       nua_handle_t* nh, nua_hmagic_t*, const sip_t* sip, tagi_t tags[]);
  void on_invite(nua_handle_t* nh, const sip_t* sip);
  void on_reinvite(Dialog& dialog, nua_handle_t* nh, const sip_t* sip);
  void on_state(nua_handle_t* nh, tagi_t tags[]);
  void on_ended(Dialog* dialog, const char* reason);
  void reject(nua_handle_t* nh, int status, const char* reason, const std::string& detail);
  void respond_error(nua_handle_t* nh, int status);
  void on_probe_answer(nua_handle_t* nh, Dialog& dialog, int status, const char* phrase);
  void answer(nua_handle_t* nh, const Offer& offer, Dialog& dialog);
  // Ends the call of dialog `nh` with a BYE, unless it has ended already.
  void hangup(nua_handle_t* nh, const char* reason);

  CallRegistry& registry_;
  const Config& config_;
  std::string media_address_;
  su_root_t* root_ = nullptr;
  nua_t* nua_ = nullptr;
  std::unique_ptr<PortPool> ports_;
  std::unique_ptr<SipConnectionGuard> sip_guard_;
  unsigned ticks_ = 0;
  std::map<nua_handle_t*, Dialog> dialogs_;
  uint64_t session_id_ = 0;
  std::function<void()> closed_;
  guint close_timer_ = 0;       // close()'s time limit, while pending
  bool shutting_down_ = false;  // nua_shutdown was called
  bool shut_down_ = false;      // the stack answered nua_shutdown
};

}  // namespace moshigw
