// What keeps the gateway's TCP listeners alive when clients hold connections open or the process
// runs out of file handles (docs/GATEWAY.md, "Connections and file handles"):
// - the soft RLIMIT_NOFILE is raised to the hard limit at start;
// - HttpListener accepts the /metrics connections itself and hands them to libsoup, because
//   libsoup drops its own listener for good after one failed accept(): at most `max` connections
//   at once (more are closed at once), idle ones closed, and after EMFILE it pauses and retries;
// - SipConnectionGuard closes the SIP TCP connections past the cap, and idle ones: Sofia-SIP has
//   no cap of its own, while every handle is taken its accept loop spins, and its idle timer
//   (TPTAG_IDLE, set too) starts only once a connection has carried a message.
#pragma once

#include <libsoup/soup.h>

#include <map>
#include <string>

namespace moshigw {

// "address:port" of an IP socket address, "" for any other.
std::string address_text(GSocketAddress* address);

// Raises the soft limit on open files to the hard one; returns the limit now in force.
long raise_open_file_limit();

class HttpListener {
 public:
  HttpListener(SoupServer* server, int max_connections, double idle_timeout_s);
  ~HttpListener();
  HttpListener(const HttpListener&) = delete;
  HttpListener& operator=(const HttpListener&) = delete;
  bool listen(const std::string& address, int port, std::string& error);
  // Every connection accepted from now on speaks TLS with `certificate` (the listener keeps a
  // reference); libsoup then serves https and wss.
  void use_tls(GTlsCertificate* certificate);
  size_t connections() const { return open_.size(); }
  // The connection of `msg` became a websocket: its owner times it from now on, not the sweep.
  // Returns its TCP connection (under its TLS, if any; its input counts, counted_input.h), null
  // if unknown: libsoup, given connections by soup_server_accept_iostream, does not know it.
  GSocketConnection* keep(SoupServerMessage* msg);

 private:
  struct Open {
    std::string peer;    // "address:port" of the client
    gint64 last_us = 0;  // last request start or end, or the accept
    bool busy = false;   // a request is being read or answered
    bool kept = false;   // a websocket now, timed by its door
  };
  static gboolean on_incoming(GSocket*, GIOCondition, gpointer self);
  static gboolean on_sweep(gpointer self);
  static void on_request(SoupServer*, SoupServerMessage* msg, gpointer self);
  static void on_request_done(SoupServer*, SoupServerMessage* msg, gpointer self);
  static void on_gone(gpointer self, GObject* connection);
  void watch();
  void pause_accepting();
  bool accept_one();
  Open* find(SoupServerMessage* msg);

  SoupServer* server_;
  const size_t max_;
  const gint64 idle_us_;
  GSocket* socket_ = nullptr;
  GTlsCertificate* tls_ = nullptr;
  GSource* incoming_ = nullptr;
  guint sweep_ = 0, resume_ = 0;
  gulong handlers_[3] = {0, 0, 0};
  gint64 last_warning_us_ = 0;
  std::map<GSocketConnection*, Open> open_;
};

// Keeps at most `max` accepted TCP connections on `port` (the SIP port), none idle longer than
// `idle_ms`: call check() now and then from the main loop; it shuts down the newest past the cap
// and the idle ones (Sofia then closes them).
class SipConnectionGuard {
 public:
  SipConnectionGuard(int port, int max, unsigned idle_ms)
      : port_(port), max_(max), idle_ms_(idle_ms) {}
  int check();  // how many it closed

 private:
  int port_, max_;
  unsigned idle_ms_;
};

}  // namespace moshigw
