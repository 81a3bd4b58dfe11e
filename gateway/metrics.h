// Counters for operators, served as Prometheus text on GET /metrics (libsoup 3, in the GLib main
// loop). Step times are observed from the calls' streaming threads, hence the mutex.
#pragma once

#include <libsoup/soup.h>

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace moshigw {

class Metrics {
 public:
  // Values read at scrape time: active calls and the worst real-time factor among them.
  struct Live {
    int active_calls = 0;
    double real_time_factor = 0;
  };

  void call_answered();
  void call_rejected(const std::string& reason);  // "busy", "codec", "sdp", "ports", ...
  void call_ended(const std::string& reason);     // "remote-bye", "rtp-timeout", ...
  void observe_step(double seconds);              // any thread
  std::string render(const Live& live) const;

 private:
  static constexpr std::array<double, 11> kBuckets = {0.001, 0.0025, 0.005, 0.01, 0.02, 0.04,
                                                      0.08,  0.16,   0.32,  0.64, 1.28};
  mutable std::mutex mutex_;
  uint64_t answered_ = 0;
  std::map<std::string, uint64_t> rejected_, ended_;
  std::array<uint64_t, kBuckets.size() + 1> buckets_{};  // the last one is +Inf
  double step_sum_ = 0;
};

class HttpListener;

// The HTTP endpoint. `live` is called on each scrape, in the main loop. Connections go through
// an HttpListener (connections.h): capped, closed when idle, and surviving EMFILE.
class MetricsServer {
 public:
  MetricsServer(const Metrics& metrics, std::function<Metrics::Live()> live, int max_connections,
                double idle_timeout_s);
  ~MetricsServer();
  bool listen(const std::string& address, int port, std::string& error);

 private:
  static void handle(SoupServer*, SoupServerMessage* msg, const char* path, GHashTable*,
                     gpointer self);
  const Metrics& metrics_;
  std::function<Metrics::Live()> live_;
  const int max_connections_;
  const double idle_timeout_s_;
  SoupServer* server_ = nullptr;
  std::unique_ptr<HttpListener> listener_;
};

}  // namespace moshigw
