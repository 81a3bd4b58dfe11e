#include "kyutai/stt.h"

#include <ATen/ATen.h>

#include <cmath>
#include <optional>

#include "kyutai/api/lm_loading.h"
#include "kyutai/api/lm_stepper.h"
#include "kyutai/api/mimi_access.h"
#include "kyutai/api/shared_cache.h"
#include "kyutai/config.h"
#include "kyutai/error.h"
#include "kyutai/model/lm.h"
#include "kyutai/model/sampler.h"
#include "kyutai/model/stt_words.h"
#include "kyutai/model/torch_errors.h"

namespace kyutai {

namespace {

SttFormat stt_format(const LmConfig& c) {
  SttFormat f;
  f.codebooks = c.user_codebooks();
  f.cardinality = c.card;
  f.text_card = c.text_card_out ? c.text_card_out : c.text_card;
  f.frame_rate = MimiConfig::moshi_2024().frame_rate;  // the Mimi Kyutai's STT models read
  f.delay_s = c.stt->audio_delay_seconds;
  f.silence_prefix_s = c.stt->audio_silence_prefix_seconds;
  // The reference script's counts of silent frames, rounded up.
  f.delay_frames = static_cast<int>(std::ceil(f.delay_s * f.frame_rate));
  f.silence_prefix_frames = static_cast<int>(std::ceil(f.silence_prefix_s * f.frame_rate));
  f.vad_heads = c.extra_heads_num_heads;
  f.context = c.transformer.context.value_or(0);
  return f;
}

}  // namespace

struct Stt::Impl {
  std::unique_ptr<LmModel> model;
  std::shared_ptr<const TextTokenizer> tokenizer;
  SttFormat format;
  SchedulerSlot scheduler;  // the batched streams' scheduler, not part of the immutable model
};

Stt::Stt(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {
  impl_->format = stt_format(impl_->model->config());
}

Stt::~Stt() = default;

std::shared_ptr<const Stt> Stt::load(const MoshiFiles& files, const std::string& device,
                                     WeightFormat weights, const WeightCacheOptions& cache,
                                     const LoadProgress& progress) {
  return translate_torch_errors([&] {
    LoadedLm lm = load_lm(files, LmKind::Stt, device, weights, cache, progress);
    auto impl = std::make_unique<Impl>();
    impl->model = std::move(lm.model);
    impl->tokenizer = std::move(lm.tokenizer);
    return std::shared_ptr<const Stt>(new Stt(std::move(impl)));
  });
}

std::shared_ptr<const Stt> Stt::load_shared(const MoshiFiles& files, const std::string& device,
                                            WeightFormat weights, const WeightCacheOptions& cache,
                                            const LoadProgress& progress) {
  return SharedCache<Stt>::get(shared_lm_key(files, device, weights),
                               [&] { return load(files, device, weights, cache, progress); });
}

std::shared_ptr<const Stt> Stt::random(const std::string& config, uint64_t seed,
                                       WeightFormat weights, const std::string& tokenizer) {
  return translate_torch_errors([&] {
    if (config.empty()) throw ConfigError("Stt::random needs a configuration file");
    LoadedLm lm =
        random_lm(LmConfig::from_file(config), config, LmKind::Stt, seed, weights, tokenizer);
    auto impl = std::make_unique<Impl>();
    impl->model = std::move(lm.model);
    impl->tokenizer = std::move(lm.tokenizer);
    return std::shared_ptr<const Stt>(new Stt(std::move(impl)));
  });
}

const SttFormat& Stt::format() const {
  return impl_->format;
}

WeightFormat Stt::weight_format() const {
  return impl_->model->weight_format();
}

const LmModel& Stt::model() const {
  return *impl_->model;
}

const std::shared_ptr<const TextTokenizer>& Stt::tokenizer() const {
  return impl_->tokenizer;
}

struct SttStream::State {
  State(std::shared_ptr<const Stt> s, BatchOptions batch, KvCacheFormat kv)
      : stt(std::move(s)),
        stepper(*stt->impl_->model, 0, kv,
                batch.enabled ? stt->impl_->scheduler.get(*stt->impl_->model) : nullptr,
                batch.max_wait_ms) {
    if (stt->tokenizer())
      words.emplace(stt->tokenizer(), stt_word_rule(stt->model().config(), stt->format().frame_rate,
                                                    stt->format().silence_prefix_frames));
  }
  std::shared_ptr<const Stt> stt;
  LmStepper stepper;
  std::optional<SttWords> words;  // none without a tokenizer
};

SttStream::SttStream(std::shared_ptr<const Stt> stt, BatchOptions batch, KvCacheFormat kv)
    : state_(std::make_unique<State>(std::move(stt), batch, kv)) {}

SttStream::~SttStream() = default;

SttStream::Step SttStream::step(const int64_t* codes, int count, const SamplingParams& params) {
  return translate_torch_errors([&] {
    if (!codes || count < 0) throw InputError("no audio codes given");
    return step_codes(std::vector<int64_t>(codes, codes + count), params, nullptr);
  });
}

SttStream::Step SttStream::step(MimiEncoder& encoder, const float* pcm, size_t samples,
                                const SamplingParams& params) {
  return translate_torch_errors([&] {
    if (!pcm) throw InputError("no audio given");
    check_sampling(params);  // refused before the encoder's state moves on
    if (encoder.num_codebooks() < state_->stt->format().codebooks)
      throw InputError("the Mimi encoder gives " + std::to_string(encoder.num_codebooks()) +
                       " codebooks; the STT model reads " +
                       std::to_string(state_->stt->format().codebooks));
    std::vector<int64_t> codes(static_cast<size_t>(encoder.num_codebooks()), 0);
    AudioIn audio{&MimiEncoderAccess::model(encoder),
                  MimiEncoderAccess::frame(encoder, pcm, samples),
                  &MimiEncoderAccess::state(encoder), &codes};
    return step_codes(codes, params, &audio);
  });
}

SttStream::Step SttStream::step_codes(const std::vector<int64_t>& in, const SamplingParams& params,
                                      AudioIn* audio) {
  const bool vad = state_->stt->format().vad_heads > 0;
  StepTiming info;
  at::Tensor heads;  // [heads, classes]
  // Every step has its token: an STT model's streams all have delay 0 (LmConfig::validate).
  const std::vector<int64_t> out =
      state_->stepper.step(in, params, &info, vad ? &heads : nullptr, audio).value();
  Step result;
  result.text_token = out[0];
  result.batch_size = info.batch_size;
  result.wait_ms = info.wait_ms;
  result.step_ms = info.step_ms;
  if (vad) {
    const at::Tensor silence = heads.select(1, 0).contiguous();  // class 0: no voice activity
    result.vad.assign(silence.data_ptr<float>(), silence.data_ptr<float>() + silence.numel());
  }
  if (state_->words) result.words = state_->words->push(result.text_token);
  return result;
}

std::vector<SttWord> SttStream::finish() {
  return state_->words ? state_->words->finish() : std::vector<SttWord>{};
}

void SttStream::reset() {
  translate_torch_errors([&] {
    state_->stepper.reset(0);
    if (state_->words) state_->words->reset();
  });
}

int64_t SttStream::steps() const {
  return state_->stepper.steps();
}

StepStats SttStream::stats() const {
  return state_->stepper.log().snapshot();
}

const Stt& SttStream::stt() const {
  return *state_->stt;
}

SamplingParams SttStream::greedy() {
  SamplingParams p;
  p.temperature = 0;  // no audio is sampled: no depformer
  p.top_k = 0;
  p.text_temperature = 0;
  p.text_top_k = 0;
  return p;
}

}  // namespace kyutai
