// The HTTP/websocket listener the websocket doors share (--ws-port, on the listen address):
// libsoup 3 in the main loop, its connections capped and timed by an HttpListener
// (common/connections.h). A door adds its path with one call; when --auth-token is set, every
// websocket path requires it (?auth_token= or "Authorization: Bearer"), checked before any
// upgrade. With --static DIR, every other path is a file of DIR (static_files.h), open to all:
// the files are a public web client, and a page cannot put a header on its websocket anyway.
#pragma once

#include <libsoup/soup.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/connections.h"
#include "doors/static_files.h"

namespace moshigw {

// Whether the client's socket takes more now. libsoup queues what it cannot write yet without a
// bound: a websocket door sends only while this holds, and meanwhile its own bound drops. Each
// websocket's kernel send buffer is bounded too (web_server.cpp, kSendBufferBytes), so that a
// client that stops reading reaches that bound within seconds.
bool client_reads(GSocket* socket);

// Whether a websocket's "error" is a client's message over the door's bounds: one frame over
// max-incoming-payload-size, or too many bytes without a complete message (counted_input.h).
bool message_too_big(const GError* error);

// How a websocket door closes a refused call (AnsweredCall::refusal): 1013 Try Again Later when
// busy (RFC 6455's registry; libsoup 3.2 does not name it), 1001 when shutting down, 1011
// otherwise; `why` is the close reason.
struct WebsocketRefusal {
  gushort code;
  const char* why;
};
WebsocketRefusal websocket_refusal(const char* refusal);

class WebServer {
 public:
  explicit WebServer(const Config& config);
  ~WebServer();
  WebServer(const WebServer&) = delete;
  WebServer& operator=(const WebServer&) = delete;

  // `on_open` gets each websocket accepted at `path`, with its request (query, peer) and its
  // TCP socket (for client_reads; the websocket's connection keeps it open). A client that sends
  // more than `max_unfinished` bytes without finishing a message gets the websocket's "error"
  // signal with G_IO_ERROR_MESSAGE_TOO_LARGE, then loses its connection (counted_input.h).
  using OnSocket = std::function<void(SoupServerMessage*, SoupWebsocketConnection*, GSocket*)>;
  void add_websocket(const std::string& path, guint64 max_unfinished, OnSocket on_open);
  bool listen(std::string& error);

 private:
  static void check_auth(SoupServer*, SoupServerMessage* msg, const char* path, GHashTable* query,
                         gpointer self);
  static void on_websocket(SoupServer*, SoupServerMessage* msg, const char* path,
                           SoupWebsocketConnection* connection, gpointer data);
  bool authorized(SoupServerMessage* msg, GHashTable* query) const;
  static void on_file(SoupServer*, SoupServerMessage* msg, const char*, GHashTable*, gpointer self);

  const Config& config_;
  SoupServer* server_ = nullptr;
  std::unique_ptr<HttpListener> listener_;
  std::unique_ptr<StaticFiles> files_;  // with --static
  struct Route {
    WebServer* server;
    guint64 max_unfinished;
    OnSocket on_open;
  };
  std::vector<std::unique_ptr<Route>> routes_;
};

}  // namespace moshigw
