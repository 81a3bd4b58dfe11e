#include "kyutai/lm_generate.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <chrono>

#include "kyutai/error.h"

namespace kyutai {

namespace {

constexpr int64_t kUngenerated = -2;

}  // namespace

LmGenState LmGen::new_state(uint64_t seed) const {
  const LmConfig& c = model_.config();
  LmGenState state;
  state.transformer = model_.new_text_state(1);
  state.cache.assign(static_cast<size_t>(c.num_codebooks() * (c.max_delay() + 2)), kUngenerated);
  state.sampler.seed(seed);
  return state;
}

std::optional<std::vector<int64_t>> LmGen::step(const std::vector<int64_t>& user_codes,
                                                LmGenState& state, const SamplingParams& params,
                                                LmStepTrace* trace, LmStepTimes* times) const {
  c10::InferenceMode guard;
  const auto start = std::chrono::steady_clock::now();
  const LmConfig& c = model_.config();
  const int64_t streams = c.num_codebooks(), ring = c.max_delay() + 2;
  const int needed = c.user_codebooks();
  if (static_cast<int>(user_codes.size()) < needed)
    throw InputError("the model needs " + std::to_string(needed) + " user codebooks, got " +
                     std::to_string(user_codes.size()));
  auto slot = [&](int64_t k, int64_t step) -> int64_t& {
    return state.cache[static_cast<size_t>(k * ring + step % ring)];
  };
  // A user code fed at step s is read at step s + delay.
  for (int j = 0; j < needed; ++j) {
    const int64_t code = user_codes[static_cast<size_t>(j)];
    if (code < 0 || code >= c.card)
      throw InputError("user code " + std::to_string(code) + " of codebook " + std::to_string(j) +
                       " is outside [0, " + std::to_string(c.card) + ")");
    const int64_t k = c.dep_q + 1 + j;
    slot(k, state.offset + c.delays[static_cast<size_t>(k)]) = code;
  }
  std::vector<int64_t> input(static_cast<size_t>(streams));
  for (int64_t k = 0; k < streams; ++k) {
    const bool initial = state.offset <= c.delays[static_cast<size_t>(k)];
    input[k] = initial ? (k == 0 ? c.text_initial_token() : c.audio_initial_token())
                       : slot(k, state.offset);
    if (input[k] == kUngenerated) throw Error("LM token cache read a step not generated yet");
  }
  at::Tensor text_logits;
  const at::Tensor out =
      model_.text_step(at::tensor(input, at::kLong).view({1, -1}), state.transformer, &text_logits);
  const int64_t text =
      state.sampler.sample(text_logits[0], params.text_temperature, params.text_top_k);
  if (trace) {
    trace->main_input = input;
    trace->transformer_out = out.view({-1}).to(at::kCPU, at::kFloat);
    trace->text_logits = text_logits[0].to(at::kCPU);
  }
  const auto middle = std::chrono::steady_clock::now();
  const std::vector<int64_t> audio = depformer(text, out, state, params, trace);
  if (times) {
    using ms = std::chrono::duration<double, std::milli>;
    times->main_ms = ms(middle - start).count();
    times->depformer_ms = ms(std::chrono::steady_clock::now() - middle).count();
  }

  ++state.offset;
  slot(0, state.offset) = text;
  for (int i = 0; i < c.dep_q; ++i) slot(i + 1, state.offset) = audio[static_cast<size_t>(i)];
  if (state.offset <= c.max_delay()) return std::nullopt;
  std::vector<int64_t> result(static_cast<size_t>(c.dep_q + 1));
  for (int k = 0; k <= c.dep_q; ++k)
    result[static_cast<size_t>(k)] =
        slot(k, state.offset - c.max_delay() + c.delays[static_cast<size_t>(k)]);
  return result;
}

std::vector<int64_t> LmGen::depformer(int64_t text_token, const at::Tensor& transformer_out,
                                      LmGenState& state, const SamplingParams& params,
                                      LmStepTrace* trace) const {
  const int dep_q = model_.config().dep_q;
  TransformerState dep_state = model_.new_depformer_state(1);
  std::vector<int64_t> tokens;
  std::vector<at::Tensor> logits;
  int64_t previous = text_token;
  for (int cb = 0; cb < dep_q; ++cb) {
    const at::Tensor l =
        model_.depformer_step(cb, at::tensor({previous}, at::kLong), transformer_out, dep_state);
    previous = state.sampler.sample(l[0], params.temperature, params.top_k);
    tokens.push_back(previous);
    if (trace) logits.push_back(l[0].to(at::kCPU));
  }
  if (trace) trace->audio_logits = at::stack(logits);
  return tokens;
}

}  // namespace kyutai
