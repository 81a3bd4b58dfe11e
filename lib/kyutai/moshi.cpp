#include "kyutai/moshi.h"

#include <ATen/ATen.h>

#include "kyutai/device.h"
#include "kyutai/error.h"
#include "kyutai/hub.h"
#include "kyutai/lm.h"
#include "kyutai/lm_generate.h"
#include "kyutai/shared_cache.h"
#include "kyutai/torch_errors.h"

namespace kyutai {

namespace {

at::ScalarType parse_dtype(const std::string& dtype) {
  if (dtype == "float32" || dtype == "fp32") return at::kFloat;
  if (dtype == "bfloat16" || dtype == "bf16") return at::kBFloat16;
  throw ConfigError("dtype '" + dtype + "' is not supported; use float32 or bfloat16");
}

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

Moshi::Moshi(std::unique_ptr<LmModel> model, std::shared_ptr<const TextTokenizer> tokenizer)
    : model_(std::move(model)), tokenizer_(std::move(tokenizer)) {
  const LmConfig& c = model_->config();
  format_.user_codebooks = c.user_codebooks();
  format_.model_codebooks = c.dep_q;
  format_.cardinality = c.card;
  format_.text_card = c.text_card;
  format_.max_delay = c.max_delay();
  format_.context = c.transformer.context.value_or(0);
}

Moshi::~Moshi() = default;

void Moshi::save_weights(const std::string& path) const {
  translate_torch_errors([&] { model_->save(path); });
}

std::shared_ptr<const Moshi> Moshi::load(const MoshiFiles& files, const std::string& device,
                                         const std::string& dtype, const LoadProgress& progress) {
  return translate_torch_errors([&] {
    check_device(device);
    auto tokenizer = TextTokenizer::load(files.tokenizer);
    auto model = std::make_unique<LmModel>(config_or_default(files.config), parse_dtype(dtype));
    check_tokenizer(tokenizer.get(), model->config());  // before reading gigabytes of weights
    model->load(files.weights, at::Device(device), progress);
    return std::shared_ptr<const Moshi>(new Moshi(std::move(model), std::move(tokenizer)));
  });
}

std::shared_ptr<const Moshi> Moshi::load_shared(const MoshiFiles& files, const std::string& device,
                                                const std::string& dtype,
                                                const LoadProgress& progress) {
  const std::string key = canonical_path(files.weights) + '\n' + canonical_path(files.config) +
                          '\n' + canonical_path(files.tokenizer) + '\n' + device + '\n' + dtype;
  return SharedCache<Moshi>::get(key, [&] { return load(files, device, dtype, progress); });
}

std::shared_ptr<const Moshi> Moshi::random(const std::string& config, uint64_t seed,
                                           const std::string& dtype, const std::string& tokenizer) {
  return translate_torch_errors([&] {
    auto model = std::make_unique<LmModel>(config_or_default(config), parse_dtype(dtype));
    model->init_random(seed, at::kCPU);
    std::shared_ptr<const TextTokenizer> tok =
        tokenizer.empty() ? nullptr : TextTokenizer::load(tokenizer);
    check_tokenizer(tok.get(), model->config());
    return std::shared_ptr<const Moshi>(new Moshi(std::move(model), std::move(tok)));
  });
}

struct MoshiConversation::State {
  State(const LmModel& model, uint64_t seed, std::shared_ptr<const TextTokenizer> tokenizer)
      : gen(model),
        lm(gen.new_state(seed)),
        text(std::move(tokenizer), padding_ids(model.config())) {}
  static std::vector<int> padding_ids(const LmConfig& c) {
    return {c.existing_text_padding_id, c.existing_text_end_padding_id};
  }
  LmGen gen;
  LmGenState lm;
  TextStream text;
};

MoshiConversation::MoshiConversation(std::shared_ptr<const Moshi> moshi, uint64_t seed)
    : moshi_(std::move(moshi)) {
  state_ = std::make_unique<State>(moshi_->model(), seed, moshi_->tokenizer());
}

MoshiConversation::~MoshiConversation() = default;

MoshiConversation::Step MoshiConversation::step(const int64_t* user_codes, int count,
                                                const SamplingParams& params) {
  return translate_torch_errors([&] {
    Step result;
    const auto out =
        state_->gen.step(std::vector<int64_t>(user_codes, user_codes + count), state_->lm, params);
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
  });
}

std::string MoshiConversation::flush_text() {
  return state_->text.flush();
}

int64_t MoshiConversation::steps() const {
  return state_->lm.offset;
}

}  // namespace kyutai
