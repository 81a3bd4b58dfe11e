#include "kyutai/api/batch_scheduler.h"

#include <algorithm>
#include <exception>

namespace kyutai {

uint64_t BatchScheduler::join() {
  std::lock_guard<std::mutex> lock(mutex_);
  const uint64_t id = next_member_++;
  expected_[id] = false;  // expected from its first submission on
  return id;
}

void BatchScheduler::leave(uint64_t member) {
  std::lock_guard<std::mutex> lock(mutex_);
  expected_.erase(member);
  wake_.notify_all();  // the others may have been waiting for it
}

bool BatchScheduler::ready(Clock::time_point now) const {
  if (pending_.empty() || running_) return false;
  if (now >= earliest_deadline()) return true;
  size_t expected = 0, waiting = 0;
  for (const auto& [member, is_expected] : expected_) {
    if (!is_expected) continue;
    ++expected;
    for (const Request* r : pending_) waiting += r->member == member;
  }
  return waiting >= expected;
}

BatchScheduler::Clock::time_point BatchScheduler::earliest_deadline() const {
  Clock::time_point earliest = Clock::time_point::max();
  for (const Request* r : pending_)
    earliest = std::min(earliest, due(r->submitted, idle_since_, r->max_wait));
  return earliest;
}

std::optional<std::vector<int64_t>> BatchScheduler::step(
    uint64_t member, const std::vector<int64_t>& user_codes, LmGenState& state,
    const SamplingParams& params, double max_wait_ms, StepTiming* info, at::Tensor* extra_heads) {
  Request request;
  request.member = member;
  request.row.user_codes = &user_codes;
  request.row.state = &state;
  request.row.params = &params;
  request.row.extra_heads = extra_heads;
  request.submitted = Clock::now();
  request.max_wait = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double, std::milli>(std::max(0.0, max_wait_ms)));
  std::unique_lock<std::mutex> lock(mutex_);
  expected_[member] = true;
  pending_.push_back(&request);
  wake_.notify_all();
  while (!request.done) {
    if (ready(Clock::now()))
      lead(lock);
    else if (running_)
      wake_.wait(lock);  // the running step wakes everyone when it ends
    else
      wake_.wait_until(lock, earliest_deadline());
  }
  lock.unlock();
  if (info) *info = request.info;
  if (request.row.error) std::rethrow_exception(request.row.error);
  return std::move(request.row.result);
}

void BatchScheduler::lead(std::unique_lock<std::mutex>& lock) {
  std::vector<Request*> batch(pending_.begin(), pending_.end());
  pending_.clear();
  running_ = true;
  lock.unlock();
  const auto start = Clock::now();
  // Whatever throws here (step_batch catches per row; this is for allocations) fails the whole
  // batch's rows, and running_ is still cleared below: no member is left waiting.
  std::vector<LmGenRow> rows;
  std::exception_ptr failed;
  try {
    rows.reserve(batch.size());
    for (Request* r : batch) rows.push_back(std::move(r->row));
    gen_.step_batch(rows);
  } catch (...) {
    failed = std::current_exception();
  }
  const double step_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  lock.lock();
  for (size_t i = 0; i < batch.size(); ++i) {
    Request& r = *batch[i];
    if (i < rows.size()) r.row = std::move(rows[i]);
    if (failed) r.row.error = failed;
    r.info.batch_size = static_cast<int>(batch.size());
    r.info.wait_ms = std::chrono::duration<double, std::milli>(start - r.submitted).count();
    r.info.step_ms = step_ms;
    r.done = true;
  }
  // Who was expected and neither took part nor is waiting now is not waited for any more.
  for (auto& [member, is_expected] : expected_) {
    if (!is_expected) continue;
    auto in = [&](auto begin, auto end) {
      return std::any_of(begin, end, [&](const Request* r) { return r->member == member; });
    };
    if (!in(batch.begin(), batch.end()) && !in(pending_.begin(), pending_.end()))
      is_expected = false;
  }
  running_ = false;
  idle_since_ = Clock::now();
  wake_.notify_all();
}

}  // namespace kyutai
