// Progress of a long operation, for callers that want to show it (a GStreamer element posts
// PROGRESS messages while a model loads). Torch-free.
#pragma once

#include <functional>

namespace kyutai {

// Called on the loading thread with the fraction done, in (0, 1], non-decreasing, the last
// call 1. An exception it throws aborts the load and propagates to the caller.
using LoadProgress = std::function<void(double fraction)>;

}  // namespace kyutai
