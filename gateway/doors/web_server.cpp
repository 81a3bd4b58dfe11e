#include "doors/web_server.h"

#include <sys/socket.h>

#include "common/counted_input.h"

namespace moshigw {

namespace {

constexpr gushort kTryAgainLater = 1013;
// The kernel's send buffer of a websocket (Linux doubles it): about 3 s of Moshi's voice in
// either protocol. Left to itself, Linux grows it up to tcp_wmem's maximum (4 MiB, minutes of
// voice) for a client that stops reading, and the doors' own bounds would never be reached.
constexpr int kSendBufferBytes = 16 * 1024;

void bound_send_buffer(GSocket* socket) {
  g_autoptr(GError) error = nullptr;
  if (!g_socket_set_option(socket, SOL_SOCKET, SO_SNDBUF, kSendBufferBytes, &error))
    g_warning("cannot bound a websocket's send buffer: %s", error->message);
}

}  // namespace

bool client_reads(GSocket* socket) {
  return g_socket_condition_check(socket, G_IO_OUT) & G_IO_OUT;
}

bool message_too_big(const GError* error) {
  return g_error_matches(error, SOUP_WEBSOCKET_ERROR, SOUP_WEBSOCKET_CLOSE_TOO_BIG) ||
         g_error_matches(error, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE);
}

WebsocketRefusal websocket_refusal(const char* refusal) {
  if (g_strcmp0(refusal, "busy") == 0) return {kTryAgainLater, "busy: max-calls"};
  if (g_strcmp0(refusal, "shutdown") == 0)
    return {SOUP_WEBSOCKET_CLOSE_GOING_AWAY, "shutting down"};
  return {SOUP_WEBSOCKET_CLOSE_SERVER_ERROR, "the call could not start"};
}

WebServer::WebServer(const Config& config) : config_(config) {
  server_ = soup_server_new("server-header", "moshi-gateway", nullptr);
  listener_ =
      std::make_unique<HttpListener>(server_, config.max_connections, config.tcp_idle_timeout_s);
  if (config.static_dir.empty()) return;
  files_ = std::make_unique<StaticFiles>(config.static_dir);
  // The handler of "/" answers every path that no websocket door has taken.
  soup_server_add_handler(server_, "/", on_file, this, nullptr);
}

WebServer::~WebServer() {
  listener_.reset();
  soup_server_disconnect(server_);
  g_object_unref(server_);
}

void WebServer::add_websocket(const std::string& path, guint64 max_unfinished, OnSocket on_open) {
  routes_.push_back(std::make_unique<Route>(Route{this, max_unfinished, std::move(on_open)}));
  // The early handler runs on the headers: a request it refuses is never upgraded.
  soup_server_add_early_handler(server_, path.c_str(), check_auth, this, nullptr);
  soup_server_add_websocket_handler(server_, path.c_str(), nullptr, nullptr, on_websocket,
                                    routes_.back().get(), nullptr);
}

bool WebServer::listen(std::string& error) {
  if (!config_.tls_cert.empty()) {
    g_autoptr(GError) gerror = nullptr;
    g_autoptr(GTlsCertificate) certificate = g_tls_certificate_new_from_files(
        config_.tls_cert.c_str(), config_.tls_key.c_str(), &gerror);
    if (!certificate) {
      error = "cannot read the TLS certificate or key: " + std::string(gerror->message);
      return false;
    }
    listener_->use_tls(certificate);
  }
  if (listener_->listen(config_.listen_address, config_.ws_port, error)) {
    g_message("listening for websockets on %s:%d (%s)", config_.listen_address.c_str(),
              config_.ws_port, config_.tls_cert.empty() ? "ws" : "wss, TLS");
    if (files_) g_message("serving the files of %s at /", files_->root().c_str());
    return true;
  }
  error = "cannot serve websockets: " + error;
  return false;
}

// Compared in constant time: the time of a refusal says nothing of the token.
static bool same_secret(const std::string& given, const std::string& secret) {
  unsigned char diff = given.size() != secret.size();
  for (size_t i = 0; i < given.size(); ++i) diff |= given[i] ^ secret[i % secret.size()];
  return diff == 0;
}

bool WebServer::authorized(SoupServerMessage* msg, GHashTable* query) const {
  const std::string& secret = config_.auth_token;
  if (secret.empty()) return true;
  const char* given =
      query ? static_cast<const char*>(g_hash_table_lookup(query, "auth_token")) : nullptr;
  if (given && same_secret(given, secret)) return true;
  const char* header =
      soup_message_headers_get_one(soup_server_message_get_request_headers(msg), "Authorization");
  return header && g_str_has_prefix(header, "Bearer ") && same_secret(header + 7, secret);
}

void WebServer::check_auth(SoupServer*, SoupServerMessage* msg, const char* path, GHashTable* query,
                           gpointer self) {
  if (static_cast<WebServer*>(self)->authorized(msg, query)) return;
  g_message("websocket %s from %s refused: no valid auth token", path,
            address_text(soup_server_message_get_remote_address(msg)).c_str());
  soup_server_message_set_status(msg, SOUP_STATUS_UNAUTHORIZED, nullptr);
  soup_message_headers_append(soup_server_message_get_response_headers(msg), "WWW-Authenticate",
                              "Bearer");
}

void WebServer::on_file(SoupServer*, SoupServerMessage* msg, const char*, GHashTable*,
                        gpointer self) {
  static_cast<WebServer*>(self)->files_->serve(msg);
}

void WebServer::on_websocket(SoupServer*, SoupServerMessage* msg, const char*,
                             SoupWebsocketConnection* connection, gpointer data) {
  auto* route = static_cast<Route*>(data);
  GSocketConnection* tcp = route->server->listener_->keep(msg);
  if (!tcp) {  // cannot be: every connection is the listener's
    g_warning("a websocket on a connection the listener does not know");
    return soup_websocket_connection_close(connection, SOUP_WEBSOCKET_CLOSE_SERVER_ERROR, nullptr);
  }
  GSocket* socket = g_socket_connection_get_socket(tcp);
  bound_send_buffer(socket);
  bound_unfinished_messages(tcp, connection, route->max_unfinished);
  route->on_open(msg, connection, socket);
}

}  // namespace moshigw
