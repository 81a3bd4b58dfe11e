// What the gateway sets on a moshibin and reads back from it: the same for every call and for
// the gateway's first moshibin, which loads the shared model.
#pragma once

#include <gst/gst.h>

#include <cstdint>
#include <vector>

#include "common/config.h"

namespace moshigw {

// Sets a call's moshibin (or the gateway's first one) from the configuration, seed aside.
void configure_moshibin(GstElement* moshi, const Config& config);

// A moshibin's step statistics, from its `stats` (moshilm's, docs/ELEMENTS.md).
struct StepReading {
  guint64 steps = 0;
  double median_ms = 0;
  double real_time_factor = 0;
  double total_ms = 0;
  std::vector<double> bounds_ms;   // the histogram's buckets' upper bounds
  std::vector<uint64_t> counts;    // steps per bucket, one more than bounds_ms (+Inf)
};
StepReading read_steps(GstElement* moshi);

}  // namespace moshigw
