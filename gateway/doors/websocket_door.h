// What the websocket doors (media streams, Kyutai's /api/chat) share: one Session per websocket
// accepted at the door's path, ticked and hung up with the door, and let go (later, in the main
// loop) once its socket has closed. A Session is made from (door, request, websocket, TCP
// socket) and has tick(now_us) and end(reason, close code, why). A door names itself
// (Door::name) and defines its destructor where its Session is complete. Each door bounds the
// bytes a client may send without finishing a message (WebServer::add_websocket).
#pragma once

#include <libsoup/soup.h>

#include <map>
#include <memory>
#include <string>

#include "call/registry.h"
#include "doors/door.h"
#include "doors/web_server.h"

namespace moshigw {

template <typename Session>
class WebsocketDoor : public Door {
 public:
  WebsocketDoor(CallRegistry& registry, std::shared_ptr<WebServer> web, const char* path,
                guint64 max_unfinished)
      : registry_(registry), web_(std::move(web)), path_(path), max_unfinished_(max_unfinished) {}
  ~WebsocketDoor() override { sessions_.clear(); }

  bool open(std::string&) override {
    web_->add_websocket(
        path_, max_unfinished_,
        [this](SoupServerMessage* msg, SoupWebsocketConnection* ws, GSocket* socket) {
          auto session = std::make_unique<Session>(*this, msg, ws, socket);
          Session* key = session.get();
          sessions_[key] = std::move(session);
        });
    return true;
  }
  void tick(gint64 now_us) override {
    for (auto& [key, session] : sessions_) session->tick(now_us);
  }
  void hang_up_all() override {
    for (auto& [key, session] : sessions_)
      session->end("shutdown", SOUP_WEBSOCKET_CLOSE_GOING_AWAY, "shutting down");
  }
  bool idle() const override { return sessions_.empty(); }

  // A session whose websocket has closed goes (later, in the main loop).
  void forget(Session* session) {
    run_later([this, session] { sessions_.erase(session); });
  }
  CallRegistry& registry() { return registry_; }

 private:
  CallRegistry& registry_;
  std::shared_ptr<WebServer> web_;
  const std::string path_;
  const guint64 max_unfinished_;
  std::map<Session*, std::unique_ptr<Session>> sessions_;
};

}  // namespace moshigw
