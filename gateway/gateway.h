// The gateway process: loads the model once, opens the front doors the configuration names
// (doors/), serves /metrics, and on SIGINT or SIGTERM hangs up every call and stops. The calls
// of every door live in one registry (call/registry.h): one max-calls, one numbering.
#pragma once

#include <glib.h>
#include <gst/gst.h>

#include <memory>
#include <string>
#include <vector>

#include "call/registry.h"
#include "common/config.h"
#include "common/metrics.h"
#include "doors/door.h"

namespace moshigw {

class Gateway {
 public:
  explicit Gateway(Config config);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Loads the model, opens the doors and the metrics endpoint. False with `error` on failure.
  bool start(std::string& error);
  // Runs until SIGINT or SIGTERM, then hangs up every call and returns.
  void run();

 private:
  void fit_connections_to_files();
  bool load_model(std::string& error);
  bool open_doors(std::string& error);
  void tick();
  void shutdown();
  void close_doors();
  Metrics::Live live();  // also collects the calls' steps into the metrics

  Config config_;
  GMainLoop* loop_ = nullptr;
  GstElement* warm_ = nullptr;  // a moshibin in PAUSED: keeps the shared model loaded
  Metrics metrics_;
  CallRegistry registry_{config_, metrics_};
  std::unique_ptr<MetricsServer> metrics_server_;
  std::vector<std::unique_ptr<Door>> doors_;
  size_t doors_open_ = 0;  // while shutting down: doors not yet closed
  bool doors_ready_ = false;  // every door opened at start
  guint timer_ = 0;
};

}  // namespace moshigw
