// The HTTP/websocket listener the websocket doors share (--ws-port, on the listen address):
// libsoup 3 in the main loop, its connections capped and timed by an HttpListener
// (common/connections.h). A door adds its path with one call; when --auth-token is set, every
// path requires it (?auth_token= or "Authorization: Bearer"), checked before any upgrade.
#pragma once

#include <libsoup/soup.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/connections.h"

namespace moshigw {

class WebServer {
 public:
  explicit WebServer(const Config& config);
  ~WebServer();
  WebServer(const WebServer&) = delete;
  WebServer& operator=(const WebServer&) = delete;

  // `on_open` gets each websocket accepted at `path`, with its request (query, peer).
  using OnSocket = std::function<void(SoupServerMessage*, SoupWebsocketConnection*)>;
  void add_websocket(const std::string& path, OnSocket on_open);
  bool listen(std::string& error);

 private:
  static void check_auth(SoupServer*, SoupServerMessage* msg, const char* path,
                         GHashTable* query, gpointer self);
  static void on_websocket(SoupServer*, SoupServerMessage* msg, const char* path,
                           SoupWebsocketConnection* connection, gpointer data);
  bool authorized(SoupServerMessage* msg, GHashTable* query) const;

  const Config& config_;
  SoupServer* server_ = nullptr;
  std::unique_ptr<HttpListener> listener_;
  struct Route {
    WebServer* server;
    OnSocket on_open;
  };
  std::vector<std::unique_ptr<Route>> routes_;
};

}  // namespace moshigw
