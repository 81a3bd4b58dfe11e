#include "kyutai/moshi.h"

#include <ATen/ATen.h>

#include "kyutai/api/lm_loading.h"
#include "kyutai/api/lm_stepper.h"
#include "kyutai/api/shared_cache.h"
#include "kyutai/error.h"
#include "kyutai/hub.h"
#include "kyutai/model/lm.h"
#include "kyutai/model/torch_errors.h"

namespace kyutai {

namespace {

LmConfig config_or_default(const std::string& config) {
  return config.empty() ? LmConfig::moshi_7b_2024() : LmConfig::from_file(config);
}

}  // namespace

struct Moshi::Batching {
  SchedulerSlot scheduler;
};

Moshi::Moshi(std::unique_ptr<LmModel> model, std::shared_ptr<const TextTokenizer> tokenizer)
    : model_(std::move(model)),
      tokenizer_(std::move(tokenizer)),
      batching_(std::make_unique<Batching>()) {
  const LmConfig& c = model_->config();
  format_.user_codebooks = c.user_codebooks();
  format_.model_codebooks = c.dep_q;
  format_.cardinality = c.card;
  format_.text_card = c.text_card;
  format_.max_delay = c.max_delay();
  format_.context = c.transformer.context.value_or(0);
}

Moshi::~Moshi() = default;

std::shared_ptr<BatchScheduler> Moshi::scheduler() const {
  return batching_->scheduler.get(*model_);
}

void Moshi::save_weights(const std::string& path) const {
  translate_torch_errors([&] { model_->save(path); });
}

WeightFormat Moshi::weight_format() const {
  return model_->weight_format();
}

std::shared_ptr<const Moshi> Moshi::load(const MoshiFiles& files, const std::string& device,
                                         WeightFormat weights, const WeightCacheOptions& cache,
                                         const LoadProgress& progress) {
  return translate_torch_errors([&] {
    LoadedLm lm = load_lm(files, LmKind::Moshi, device, weights, cache, progress);
    return std::shared_ptr<const Moshi>(new Moshi(std::move(lm.model), std::move(lm.tokenizer)));
  });
}

std::shared_ptr<const Moshi> Moshi::load_shared(const MoshiFiles& files, const std::string& device,
                                                WeightFormat weights,
                                                const WeightCacheOptions& cache,
                                                const LoadProgress& progress) {
  return SharedCache<Moshi>::get(shared_lm_key(files, device, weights),
                                 [&] { return load(files, device, weights, cache, progress); });
}

std::shared_ptr<const Moshi> Moshi::random(const std::string& config, uint64_t seed,
                                           WeightFormat weights, const std::string& tokenizer) {
  return translate_torch_errors([&] {
    LoadedLm lm =
        random_lm(config_or_default(config), config, LmKind::Moshi, seed, weights, tokenizer);
    return std::shared_ptr<const Moshi>(new Moshi(std::move(lm.model), std::move(lm.tokenizer)));
  });
}

struct MoshiConversation::State {
  State(const LmModel& model, uint64_t seed, std::shared_ptr<const TextTokenizer> tokenizer,
        KvCacheFormat kv, std::shared_ptr<BatchScheduler> scheduler, double max_wait_ms)
      : stepper(model, seed, kv, std::move(scheduler), max_wait_ms),
        text(std::move(tokenizer), padding_ids(model.config())) {}
  static std::vector<int> padding_ids(const LmConfig& c) {
    return {c.existing_text_padding_id, c.existing_text_end_padding_id};
  }
  LmStepper stepper;
  TextStream text;
};

MoshiConversation::MoshiConversation(std::shared_ptr<const Moshi> moshi, uint64_t seed,
                                     BatchOptions batch, KvCacheFormat kv)
    : moshi_(std::move(moshi)), batch_(batch) {
  state_ =
      std::make_unique<State>(moshi_->model(), seed, moshi_->tokenizer(), kv,
                              batch_.enabled ? moshi_->scheduler() : nullptr, batch_.max_wait_ms);
}

MoshiConversation::~MoshiConversation() = default;

MoshiConversation::Step MoshiConversation::step(const int64_t* user_codes, int count,
                                                const SamplingParams& params) {
  return translate_torch_errors([&] {
    Step result;
    const std::vector<int64_t> codes(user_codes, user_codes + count);
    StepTiming info;
    const std::optional<std::vector<int64_t>> out = state_->stepper.step(codes, params, &info);
    result.batch_size = info.batch_size;
    result.wait_ms = info.wait_ms;
    result.step_ms = info.step_ms;
    if (!out) return result;
    result.ready = true;
    result.text_token = (*out)[0];
    result.audio.assign(out->begin() + 1, out->end());
    if (moshi_->tokenizer()) result.text = state_->text.push(static_cast<int>(result.text_token));
    return result;
  });
}

void MoshiConversation::reset(uint64_t seed) {
  translate_torch_errors([&] {
    state_->stepper.reset(seed);
    state_->text.reset();
  });
}

std::string MoshiConversation::flush_text() {
  return state_->text.flush();
}

int64_t MoshiConversation::steps() const {
  return state_->stepper.steps();
}

StepStats MoshiConversation::stats() const {
  return state_->stepper.log().snapshot();
}

void MoshiConversation::set_frame_ms(double frame_ms) {
  state_->stepper.log().set_frame_ms(frame_ms);
}

}  // namespace kyutai
