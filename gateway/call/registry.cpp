#include "call/registry.h"

#include <glib.h>

#include <algorithm>

#include "call/call.h"

namespace moshigw {

const char* CallRegistry::refusal() const {
  if (shutting_down_) return "shutdown";
  if (active() >= config_.max_calls) return "busy";
  return nullptr;
}

int CallRegistry::active() const {
  return static_cast<int>(
      std::count_if(calls_.begin(), calls_.end(), [](const Call* c) { return !c->stopped(); }));
}

uint64_t CallRegistry::seed_for(int id) const {
  if (config_.seed >= 0) return static_cast<uint64_t>(config_.seed) + id;
  return (static_cast<uint64_t>(g_random_int()) << 32) | g_random_int();
}

double CallRegistry::collect_steps() {
  double worst = 0;
  for (Call* call : calls_) worst = std::max(worst, call->collect_steps());
  return worst;
}

}  // namespace moshigw
