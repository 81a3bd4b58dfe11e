// Counters for operators, served as Prometheus text on GET /metrics (libsoup 3). Everything here
// runs in the GLib main loop: the calls' step times come from moshilm's own statistics, read
// there (call.h), never from the streaming threads.
#pragma once

#include <libsoup/soup.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace moshigw {

class Metrics {
 public:
  // Values read at scrape time: active calls and the worst real-time factor among them, and
  // whether the gateway takes calls (the model loaded, the SIP stack running, not shutting down).
  struct Live {
    int active_calls = 0;
    double real_time_factor = 0;
    bool ready = false;
  };

  // Every series of calls carries the front door as a label ("sip", "audiosocket", ...); a
  // door that is open shows its refusals at zero before the first.
  void open_door(const std::string& door);
  void call_answered(const std::string& door);
  void call_rejected(const std::string& door, const std::string& reason);  // "busy", "codec", ...
  void call_ended(const std::string& door, const std::string& reason);  // "remote-bye", ...
  // Adds steps to the step histogram: `counts` steps per bucket of upper bounds `bounds_ms`
  // (one more count than bounds: the last bucket is +Inf), together `total_ms` long; as
  // moshilm's `stats` gives them. The first call sets the buckets, which the library fixes.
  void add_steps(const std::vector<double>& bounds_ms, const std::vector<uint64_t>& counts,
                 double total_ms);
  std::string render(const Live& live) const;

 private:
  void render_steps(GString* out) const;
  using Key = std::pair<std::string, std::string>;  // door, reason
  static void render_counter(GString* out, const char* name, const char* help,
                             const std::map<Key, uint64_t>& counts);

  std::map<std::string, uint64_t> answered_;
  std::map<Key, uint64_t> rejected_, ended_;
  std::vector<double> bounds_ms_;  // the step histogram's buckets, then their counts
  std::vector<uint64_t> buckets_{0};
  double step_sum_ms_ = 0;
};

class HttpListener;

// The HTTP endpoint: /metrics, and /healthz for orchestrators and load balancers (200 "ok" while
// the gateway takes calls, 503 otherwise). `live` is called on each request, in the main loop.
// Connections go through an HttpListener (connections.h): capped, closed when idle, and
// surviving EMFILE.
class MetricsServer {
 public:
  MetricsServer(const Metrics& metrics, std::function<Metrics::Live()> live, int max_connections,
                double idle_timeout_s);
  ~MetricsServer();
  bool listen(const std::string& address, int port, std::string& error);

 private:
  static void handle(SoupServer*, SoupServerMessage* msg, const char* path, GHashTable*,
                     gpointer self);
  static void handle_health(SoupServer*, SoupServerMessage* msg, const char* path, GHashTable*,
                            gpointer self);
  const Metrics& metrics_;
  std::function<Metrics::Live()> live_;
  const int max_connections_;
  const double idle_timeout_s_;
  SoupServer* server_ = nullptr;
  std::unique_ptr<HttpListener> listener_;
};

}  // namespace moshigw
