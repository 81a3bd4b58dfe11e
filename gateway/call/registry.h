// Every call of the process, whichever door it came through: one count for max-calls, one
// numbering and one seed rule, and the worst real-time factor for /metrics. The doors ask it
// before they answer; each Call registers itself while it lives. Main loop only.
#pragma once

#include <cstdint>
#include <set>

#include "common/config.h"
#include "common/metrics.h"

namespace moshigw {

class Call;

class CallRegistry {
 public:
  CallRegistry(const Config& config, Metrics& metrics) : config_(config), metrics_(metrics) {}

  // Why a new call is refused now: "shutdown", "busy" (max-calls in progress); nullptr: admit.
  const char* refusal() const;
  int active() const;
  // The next call's number (1, 2, ...) and its seed: random, or seed + N for call N.
  int next_id() { return next_id_++; }
  uint64_t seed_for(int id) const;
  // Adds each call's new steps to the metrics; returns the slowest call's real-time factor.
  double collect_steps();
  bool empty() const { return calls_.empty(); }

  void add(Call* call) { calls_.insert(call); }
  void remove(Call* call) { calls_.erase(call); }
  void begin_shutdown() { shutting_down_ = true; }
  bool shutting_down() const { return shutting_down_; }
  const Config& config() const { return config_; }
  Metrics& metrics() { return metrics_; }

 private:
  const Config& config_;
  Metrics& metrics_;
  std::set<Call*> calls_;
  int next_id_ = 1;
  bool shutting_down_ = false;
};

}  // namespace moshigw
