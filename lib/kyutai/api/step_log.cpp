#include "kyutai/api/step_log.h"

#include <algorithm>

namespace kyutai {

namespace {

size_t bucket(double ms) {
  const auto& bounds = StepStats::kBucketBoundsMs;
  return static_cast<size_t>(std::lower_bound(bounds.begin(), bounds.end(), ms) - bounds.begin());
}

// The value below which `fraction` of the sorted `values` lie (nearest rank).
double rank(const std::vector<double>& sorted, double fraction) {
  const size_t i = static_cast<size_t>(fraction * static_cast<double>(sorted.size()));
  return sorted[std::min(i, sorted.size() - 1)];
}

}  // namespace

void StepLog::record(const StepTiming& step) {
  const double ms = step.wait_ms + step.step_ms;
  std::lock_guard<std::mutex> lock(mutex_);
  totals_.steps++;
  totals_.total_ms += ms;
  totals_.max_ms = std::max(totals_.max_ms, ms);
  totals_.histogram[bucket(ms)]++;
  if (window_.size() < StepStats::kWindow) {
    window_.push_back(step);
    return;
  }
  window_[next_] = step;
  next_ = (next_ + 1) % StepStats::kWindow;
}

void StepLog::reset() {
  std::lock_guard<std::mutex> lock(mutex_);
  totals_ = StepStats();
  window_.clear();
  next_ = 0;
}

void StepLog::set_frame_ms(double frame_ms) {
  std::lock_guard<std::mutex> lock(mutex_);
  frame_ms_ = frame_ms;
}

StepStats StepLog::snapshot() const {
  std::lock_guard<std::mutex> lock(mutex_);
  StepStats s = totals_;
  if (!window_.empty()) summarize_window(s);
  return s;
}

void StepLog::summarize_window(StepStats& s) const {
  std::vector<double> sorted;
  sorted.reserve(window_.size());
  for (const StepTiming& t : window_) {
    sorted.push_back(t.wait_ms + t.step_ms);
    s.mean_batch += t.batch_size;
    s.mean_wait_ms += t.wait_ms;
    s.max_wait_ms = std::max(s.max_wait_ms, t.wait_ms);
  }
  const double n = static_cast<double>(window_.size());
  s.mean_batch /= n;
  s.mean_wait_ms /= n;
  std::sort(sorted.begin(), sorted.end());
  s.median_ms = rank(sorted, 0.5);
  s.p90_ms = rank(sorted, 0.9);
  s.real_time_factor = frame_ms_ > 0 ? s.median_ms / frame_ms_ : 0;
  // The last step is the one before the ring's next slot (the back while it fills).
  const size_t last = window_.size() < StepStats::kWindow ? window_.size() - 1
                                                          : (next_ + StepStats::kWindow - 1) %
                                                                StepStats::kWindow;
  s.last_batch = window_[last].batch_size;
}

}  // namespace kyutai
