#include "common/connections.h"

#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "common/counted_input.h"

namespace moshigw {

namespace {

constexpr guint kSweepMs = 500;
constexpr guint kPauseMs = 250;  // after EMFILE: the time handles need to come back
constexpr gint64 kWarnEveryUs = 10 * G_USEC_PER_SEC;

// The local port of a connected (not listening) TCP socket `fd`, or -1.
int accepted_tcp_port(int fd) {
  int type = 0, listening = 0;
  socklen_t len = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) return -1;
  len = sizeof listening;
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || listening) return -1;
  sockaddr_storage local{};
  len = sizeof local;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0) return -1;
  if (local.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&local)->sin_port);
  if (local.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&local)->sin6_port);
  return -1;
}

}  // namespace

std::string address_text(GSocketAddress* address) {
  if (!G_IS_INET_SOCKET_ADDRESS(address)) return "";
  auto* inet = G_INET_SOCKET_ADDRESS(address);
  g_autofree char* ip = g_inet_address_to_string(g_inet_socket_address_get_address(inet));
  return std::string(ip) + ":" + std::to_string(g_inet_socket_address_get_port(inet));
}

long raise_open_file_limit() {
  struct rlimit limit {};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return -1;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
    getrlimit(RLIMIT_NOFILE, &limit);
  }
  return limit.rlim_cur == RLIM_INFINITY ? -1 : static_cast<long>(limit.rlim_cur);
}

HttpListener::HttpListener(SoupServer* server, int max_connections, double idle_timeout_s)
    : server_(server),
      max_(static_cast<size_t>(max_connections)),
      idle_us_(static_cast<gint64>(idle_timeout_s * G_USEC_PER_SEC)) {
  handlers_[0] = g_signal_connect(server_, "request-started", G_CALLBACK(on_request), this);
  handlers_[1] = g_signal_connect(server_, "request-finished", G_CALLBACK(on_request_done), this);
  handlers_[2] = g_signal_connect(server_, "request-aborted", G_CALLBACK(on_request_done), this);
}

HttpListener::~HttpListener() {
  for (gulong h : handlers_)
    if (h) g_signal_handler_disconnect(server_, h);
  for (auto& [connection, open] : open_) g_object_weak_unref(G_OBJECT(connection), on_gone, this);
  if (incoming_) g_source_destroy(incoming_), g_source_unref(incoming_);
  if (sweep_) g_source_remove(sweep_);
  if (resume_) g_source_remove(resume_);
  if (socket_) g_socket_close(socket_, nullptr), g_object_unref(socket_);
  if (tls_) g_object_unref(tls_);
}

void HttpListener::use_tls(GTlsCertificate* certificate) {
  tls_ = G_TLS_CERTIFICATE(g_object_ref(certificate));
}

bool HttpListener::listen(const std::string& address, int port, std::string& error) {
  g_autoptr(GInetAddress) inet = g_inet_address_new_from_string(address.c_str());
  const std::string where = address + ":" + std::to_string(port);
  if (!inet) {
    error = "invalid address '" + address + "'";
    return false;
  }
  g_autoptr(GError) gerror = nullptr;
  socket_ = g_socket_new(g_inet_address_get_family(inet), G_SOCKET_TYPE_STREAM,
                         G_SOCKET_PROTOCOL_TCP, &gerror);
  g_autoptr(GSocketAddress) bind_to = g_inet_socket_address_new(inet, port);
  if (socket_) g_socket_set_blocking(socket_, FALSE);
  if (!socket_ || !g_socket_bind(socket_, bind_to, TRUE, &gerror) ||
      !g_socket_listen(socket_, &gerror)) {
    error = "cannot listen on " + where + ": " + gerror->message;
    return false;
  }
  watch();
  sweep_ = g_timeout_add(kSweepMs, on_sweep, this);
  return true;
}

void HttpListener::watch() {
  incoming_ = g_socket_create_source(socket_, G_IO_IN, nullptr);
  g_source_set_callback(incoming_, G_SOURCE_FUNC(on_incoming), this, nullptr);
  g_source_attach(incoming_, nullptr);
}

gboolean HttpListener::on_incoming(GSocket*, GIOCondition, gpointer self) {
  auto* listener = static_cast<HttpListener*>(self);
  for (int i = 0; i < 16; ++i)
    if (!listener->accept_one()) break;
  return listener->incoming_ ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

// Out of handles: the pending connection stays queued, and the listener sleeps instead of
// spinning on a socket that stays readable.
void HttpListener::pause_accepting() {
  const gint64 now = g_get_monotonic_time();
  if (now - last_warning_us_ > kWarnEveryUs) {
    g_warning("out of file handles: HTTP connections wait (%zu open)", open_.size());
    last_warning_us_ = now;
  }
  g_source_destroy(incoming_);
  g_source_unref(incoming_);
  incoming_ = nullptr;
  resume_ = g_timeout_add(
      kPauseMs,
      [](gpointer self) -> gboolean {
        auto* listener = static_cast<HttpListener*>(self);
        listener->resume_ = 0;
        listener->watch();
        return G_SOURCE_REMOVE;
      },
      this);
}

// False when nothing more can be accepted now.
bool HttpListener::accept_one() {
  g_autoptr(GError) error = nullptr;
  GSocket* client = g_socket_accept(socket_, nullptr, &error);
  if (!client) {
    // GIO reports both EMFILE and ENFILE as TOO_MANY_OPEN_FILES (errno is not reliable here).
    if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_TOO_MANY_OPEN_FILES)) pause_accepting();
    return false;
  }
  if (open_.size() >= max_) {
    g_socket_close(client, nullptr);
    g_object_unref(client);
    return true;
  }
  GSocketConnection* connection = counted_connection_new(client);
  g_autoptr(GSocketAddress) local = g_socket_get_local_address(client, nullptr);
  g_autoptr(GSocketAddress) remote = g_socket_get_remote_address(client, nullptr);
  g_object_unref(client);
  Open& open = open_[connection];
  open.peer = remote ? address_text(remote) : "";
  open.last_us = g_get_monotonic_time();
  g_object_weak_ref(G_OBJECT(connection), on_gone, this);
  // libsoup takes its own reference; a TLS connection handshakes on its first read.
  GIOStream* stream = tls_ ? g_tls_server_connection_new(G_IO_STREAM(connection), tls_, nullptr)
                           : G_IO_STREAM(g_object_ref(connection));
  if (!stream || !soup_server_accept_iostream(server_, stream, local, remote, nullptr))
    g_io_stream_close(G_IO_STREAM(connection), nullptr, nullptr);
  if (stream) g_object_unref(stream);
  g_object_unref(connection);
  return true;
}

void HttpListener::on_gone(gpointer self, GObject* connection) {
  static_cast<HttpListener*>(self)->open_.erase(reinterpret_cast<GSocketConnection*>(connection));
}

HttpListener::Open* HttpListener::find(SoupServerMessage* msg) {
  const std::string peer = address_text(soup_server_message_get_remote_address(msg));
  for (auto& [connection, open] : open_)
    if (open.peer == peer) return &open;
  return nullptr;
}

GSocketConnection* HttpListener::keep(SoupServerMessage* msg) {
  const std::string peer = address_text(soup_server_message_get_remote_address(msg));
  for (auto& [connection, open] : open_) {
    if (open.peer != peer) continue;
    open.kept = true;
    return connection;
  }
  return nullptr;
}

void HttpListener::on_request(SoupServer*, SoupServerMessage* msg, gpointer self) {
  if (Open* open = static_cast<HttpListener*>(self)->find(msg)) {
    open->busy = true;
    open->last_us = g_get_monotonic_time();
  }
}

void HttpListener::on_request_done(SoupServer*, SoupServerMessage* msg, gpointer self) {
  if (Open* open = static_cast<HttpListener*>(self)->find(msg)) {
    open->busy = false;
    open->last_us = g_get_monotonic_time();
  }
}

// An idle connection, or a request that takes as long (a client that sends its headers byte by
// byte), is shut down; libsoup then sees the end of the stream and lets it go.
gboolean HttpListener::on_sweep(gpointer self) {
  auto* listener = static_cast<HttpListener*>(self);
  const gint64 now = g_get_monotonic_time();
  for (auto& [connection, open] : listener->open_)
    if (!open.kept && now - open.last_us > listener->idle_us_)
      g_socket_shutdown(g_socket_connection_get_socket(connection), TRUE, TRUE, nullptr);
  return G_SOURCE_CONTINUE;
}

// Milliseconds since `fd` last received or sent data (since it was accepted, if never).
static unsigned idle_ms(int fd) {
  tcp_info info{};
  socklen_t len = sizeof info;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return 0;
  return std::min(info.tcpi_last_data_recv, info.tcpi_last_data_sent);
}

int SipConnectionGuard::check() {
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return 0;
  std::vector<int> fds;
  while (struct dirent* entry = readdir(dir)) {
    const int fd = atoi(entry->d_name);
    if (fd > 2 && fd != dirfd(dir) && accepted_tcp_port(fd) == port_) fds.push_back(fd);
  }
  closedir(dir);
  // The newest connections (highest descriptors, as a flood's) go first past the cap; any
  // connection idle too long goes too (Sofia's own idle timer starts only with a first message).
  std::sort(fds.begin(), fds.end());
  int closed = 0;
  for (size_t i = 0; i < fds.size(); ++i) {
    if (i < static_cast<size_t>(max_) && idle_ms(fds[i]) < idle_ms_) continue;
    shutdown(fds[i], SHUT_RDWR);
    closed++;
  }
  return closed;
}

}  // namespace moshigw
