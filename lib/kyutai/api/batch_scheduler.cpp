#include "kyutai/api/batch_scheduler.h"

#include <exception>

namespace kyutai {

std::optional<std::vector<int64_t>> BatchScheduler::step(
    uint64_t member, const std::vector<int64_t>& user_codes, LmGenState& state,
    const SamplingParams& params, double max_wait_ms, StepTiming* info, at::Tensor* extra_heads) {
  LmGenRow row;
  row.user_codes = &user_codes;
  row.state = &state;
  row.params = &params;
  row.extra_heads = extra_heads;
  row = batcher_.step(member, std::move(row), max_wait_ms, info);
  if (row.error) std::rethrow_exception(row.error);  // step_batch fails rows one by one
  return std::move(row.result);
}

}  // namespace kyutai
