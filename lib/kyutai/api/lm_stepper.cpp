#include "kyutai/api/lm_stepper.h"

#include <chrono>

#include "kyutai/error.h"

namespace kyutai {

namespace {

const LmModel& checked(const LmModel& model, KvCacheFormat kv) {
  if (kv == KvCacheFormat::Int8 && !model.device().is_cpu())
    throw ConfigError("the int8 KV cache runs on the CPU only");
  return model;
}

}  // namespace

std::shared_ptr<BatchScheduler> SchedulerSlot::get(const LmModel& model) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!scheduler_) scheduler_ = std::make_shared<BatchScheduler>(model);
  return scheduler_;
}

LmStepper::LmStepper(const LmModel& model, uint64_t seed, KvCacheFormat kv,
                     std::shared_ptr<BatchScheduler> scheduler, double max_wait_ms)
    : gen_(checked(model, kv), kv),
      state_(gen_.new_state(seed)),
      scheduler_(std::move(scheduler)),
      max_wait_ms_(max_wait_ms) {
  if (scheduler_) member_ = scheduler_->join();
}

LmStepper::~LmStepper() {
  if (scheduler_) scheduler_->leave(member_);
}

std::optional<std::vector<int64_t>> LmStepper::step(const std::vector<int64_t>& codes,
                                                    const SamplingParams& params,
                                                    StepTiming* timing, at::Tensor* extra_heads,
                                                    AudioIn* audio) {
  StepTiming info;
  std::optional<std::vector<int64_t>> out;
  if (scheduler_) {
    out = scheduler_->step(member_, codes, state_, params, max_wait_ms_, &info, extra_heads, audio);
  } else {
    const auto start = std::chrono::steady_clock::now();
    if (audio) encode_audio({audio});
    out = gen_.step(codes, state_, params, nullptr, nullptr, extra_heads);
    info.step_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  }
  log_.record(info);
  if (timing) *timing = info;
  return out;
}

void LmStepper::reset(uint64_t seed) {
  state_ = gen_.new_state(seed);
  log_.reset();
}

}  // namespace kyutai
