#include "kyutai/moshi.h"

#include <ATen/ATen.h>

#include <chrono>
#include <mutex>

#include "kyutai/api/batch_scheduler.h"
#include "kyutai/api/step_log.h"
#include "kyutai/device.h"
#include "kyutai/error.h"
#include "kyutai/hub.h"
#include "kyutai/model/lm.h"
#include "kyutai/model/lm_generate.h"
#include "kyutai/api/shared_cache.h"
#include "kyutai/model/torch_errors.h"

namespace kyutai {

namespace {

LmConfig config_or_default(const std::string& config) {
  return config.empty() ? LmConfig::moshi_7b_2024() : LmConfig::from_file(config);
}

void check_tokenizer(const TextTokenizer* tokenizer, const LmConfig& config) {
  if (tokenizer && tokenizer->vocab_size() != config.text_card)
    throw ConfigError(tokenizer->path() + ": the text tokenizer has " +
                      std::to_string(tokenizer->vocab_size()) +
                      " pieces but the model's text_card is " + std::to_string(config.text_card));
}

}  // namespace

struct Moshi::Batching {
  std::mutex mutex;
  std::shared_ptr<BatchScheduler> scheduler;
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
  std::lock_guard<std::mutex> lock(batching_->mutex);
  if (!batching_->scheduler) batching_->scheduler = std::make_shared<BatchScheduler>(*model_);
  return batching_->scheduler;
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
    check_device(device);
    auto tokenizer = TextTokenizer::load(files.tokenizer);
    // locate_moshi has parsed the config; it is not read again.
    auto model =
        std::make_unique<LmModel>(files.lm_config, resolve_weight_format(weights, device));
    check_tokenizer(tokenizer.get(), model->config());  // before reading gigabytes of weights
    model->load(files.weights, at::Device(device), &cache, progress);
    return std::shared_ptr<const Moshi>(new Moshi(std::move(model), std::move(tokenizer)));
  });
}

std::shared_ptr<const Moshi> Moshi::load_shared(const MoshiFiles& files, const std::string& device,
                                                WeightFormat weights,
                                                const WeightCacheOptions& cache,
                                                const LoadProgress& progress) {
  // The resolved format, so that "auto" and what it stands for share one copy.
  const std::string format = weight_format_name(resolve_weight_format(weights, device));
  const std::string key = canonical_path(files.weights) + '\n' + canonical_path(files.config) +
                          '\n' + canonical_path(files.tokenizer) + '\n' + device + '\n' + format;
  return SharedCache<Moshi>::get(key,
                                 [&] { return load(files, device, weights, cache, progress); });
}

std::shared_ptr<const Moshi> Moshi::random(const std::string& config, uint64_t seed,
                                           WeightFormat weights, const std::string& tokenizer) {
  return translate_torch_errors([&] {
    auto model = std::make_unique<LmModel>(config_or_default(config),
                                           resolve_weight_format(weights, "cpu"));
    model->init_random(seed, at::kCPU);
    std::shared_ptr<const TextTokenizer> tok =
        tokenizer.empty() ? nullptr : TextTokenizer::load(tokenizer);
    check_tokenizer(tok.get(), model->config());
    return std::shared_ptr<const Moshi>(new Moshi(std::move(model), std::move(tok)));
  });
}

struct MoshiConversation::State {
  State(const LmModel& model, uint64_t seed, std::shared_ptr<const TextTokenizer> tokenizer,
        KvCacheFormat kv)
      : gen(model, kv),
        lm(gen.new_state(seed)),
        text(std::move(tokenizer), padding_ids(model.config())) {}
  static std::vector<int> padding_ids(const LmConfig& c) {
    return {c.existing_text_padding_id, c.existing_text_end_padding_id};
  }
  LmGen gen;
  LmGenState lm;
  TextStream text;
  StepLog log;
};

MoshiConversation::MoshiConversation(std::shared_ptr<const Moshi> moshi, uint64_t seed,
                                     BatchOptions batch, KvCacheFormat kv)
    : moshi_(std::move(moshi)), batch_(batch) {
  if (kv == KvCacheFormat::Int8 && !moshi_->model().device().is_cpu())
    throw ConfigError("the int8 KV cache runs on the CPU only");
  state_ = std::make_unique<State>(moshi_->model(), seed, moshi_->tokenizer(), kv);
  if (batch_.enabled) {
    scheduler_ = moshi_->scheduler();
    member_ = scheduler_->join();
  }
}

MoshiConversation::~MoshiConversation() {
  if (scheduler_) scheduler_->leave(member_);
}

MoshiConversation::Step MoshiConversation::step(const int64_t* user_codes, int count,
                                                const SamplingParams& params) {
  return translate_torch_errors([&] {
    Step result;
    const std::vector<int64_t> codes(user_codes, user_codes + count);
    StepTiming info;
    std::optional<std::vector<int64_t>> out;
    if (scheduler_) {
      out = scheduler_->step(member_, codes, state_->lm, params, batch_.max_wait_ms, &info);
    } else {
      const auto start = std::chrono::steady_clock::now();
      out = state_->gen.step(codes, state_->lm, params);
      info.step_ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count();
    }
    state_->log.record(info);
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
    state_->lm = state_->gen.new_state(seed);
    state_->text.reset();
    state_->log.reset();
  });
}

std::string MoshiConversation::flush_text() {
  return state_->text.flush();
}

int64_t MoshiConversation::steps() const {
  return state_->lm.offset;
}

StepStats MoshiConversation::stats() const {
  return state_->log.snapshot();
}

void MoshiConversation::set_frame_ms(double frame_ms) {
  state_->log.set_frame_ms(frame_ms);
}

}  // namespace kyutai
