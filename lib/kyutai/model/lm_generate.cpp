#include "kyutai/model/lm_generate.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>

#include "kyutai/error.h"
#include "kyutai/weights/linear_weight.h"

namespace kyutai {

namespace {

constexpr int64_t kUngenerated = -2;

// Steps the token ring keeps per stream.
int64_t ring_steps(const LmConfig& c) {
  return c.max_delay() + 2;
}

// The token ring's slot of stream k at `step`.
int64_t& token_slot(LmGenState& state, const LmConfig& c, int64_t k, int64_t step) {
  const int64_t ring = ring_steps(c);
  return state.cache[static_cast<size_t>(k * ring + step % ring)];
}

// The text token of one row, from its logits [V] (float, host): Kyutai's Rust server applies
// the repetition penalty to the logits before sampling, so a copy is penalised, never the
// logits a trace records.
int64_t sample_text(LmGenState& state, const SamplingParams& params, const at::Tensor& logits) {
  if (static_cast<float>(params.repetition_penalty) == 1.0f)
    return state.sampler.sample(logits, params.text_temperature, params.text_top_k);
  at::Tensor penalised = logits.contiguous().clone();
  state.text_history.penalize(penalised.data_ptr<float>(), penalised.numel(),
                              params.repetition_penalty, params.repetition_penalty_context);
  return state.sampler.sample(penalised, params.text_temperature, params.text_top_k);
}

}  // namespace

LmGenState LmGen::new_state(uint64_t seed) const {
  const LmConfig& c = model_.config();
  LmGenState state;
  state.transformer = model_.new_text_state(1, kv_);
  state.depformer = model_.new_depformer_state(1);
  state.cache.assign(static_cast<size_t>(c.num_codebooks() * ring_steps(c)), kUngenerated);
  state.sampler.seed(seed);
  // The tokens the reference's penalty skips: padding, end of padding and the start token.
  state.text_history = TextHistory(
      {c.existing_text_padding_id, c.existing_text_end_padding_id, c.text_initial_token()});
  return state;
}

std::optional<std::vector<int64_t>> LmGen::step(const std::vector<int64_t>& user_codes,
                                                LmGenState& state, const SamplingParams& params,
                                                LmStepTrace* trace, LmStepTimes* times,
                                                at::Tensor* extra_heads) const {
  std::vector<LmGenRow> rows(1);
  rows[0].user_codes = &user_codes;
  rows[0].state = &state;
  rows[0].params = &params;
  rows[0].trace = trace;
  rows[0].extra_heads = extra_heads;
  step_batch(rows, times);
  if (rows[0].error) std::rethrow_exception(rows[0].error);
  return std::move(rows[0].result);
}

void LmGen::step_batch(std::vector<LmGenRow>& rows, LmStepTimes* times) const {
  c10::InferenceMode guard;
  if (times) *times = LmStepTimes();
  std::vector<LmGenRow*> ready;
  std::vector<std::vector<int64_t>> inputs;
  auto run = [&] {
    if (ready.empty()) return;
    try {
      pass(ready, inputs, times);
    } catch (...) {
      for (LmGenRow* row : ready) row->error = std::current_exception();
    }
    ready.clear();
    inputs.clear();
  };
  for (LmGenRow& row : rows) {
    try {
      check_sampling(*row.params);
      inputs.push_back(prepare(*row.user_codes, *row.state));
      ready.push_back(&row);
    } catch (...) {
      row.error = std::current_exception();
    }
    if (static_cast<int64_t>(ready.size()) == LinearWeight::kExactRows) run();
  }
  run();
}

std::vector<int64_t> LmGen::prepare(const std::vector<int64_t>& user_codes,
                                    LmGenState& state) const {
  const LmConfig& c = model_.config();
  const int64_t streams = c.num_codebooks();
  const int needed = c.user_codebooks();
  if (static_cast<int>(user_codes.size()) < needed)
    throw InputError("the model needs " + std::to_string(needed) + " user codebooks, got " +
                     std::to_string(user_codes.size()));
  for (int j = 0; j < needed; ++j) {
    const int64_t code = user_codes[static_cast<size_t>(j)];
    if (code < 0 || code >= c.card)
      throw InputError("user code " + std::to_string(code) + " of codebook " + std::to_string(j) +
                       " is outside [0, " + std::to_string(c.card) + ")");
  }
  auto slot = [&](int64_t k, int64_t step) -> int64_t& { return token_slot(state, c, k, step); };
  // A user code fed at step s is read at step s + delay.
  for (int j = 0; j < needed; ++j) {
    const int64_t k = c.dep_q + 1 + j;
    slot(k, state.offset + c.delays[static_cast<size_t>(k)]) = user_codes[static_cast<size_t>(j)];
  }
  std::vector<int64_t> input(static_cast<size_t>(streams));
  for (int64_t k = 0; k < streams; ++k) {
    const bool initial = state.offset <= c.delays[static_cast<size_t>(k)];
    input[k] = initial ? (k == 0 ? c.text_initial_token() : c.audio_initial_token())
                       : slot(k, state.offset);
    if (input[k] == kUngenerated) throw Error("LM token cache read a step not generated yet");
  }
  return input;
}

void LmGen::pass(const std::vector<LmGenRow*>& rows,
                 const std::vector<std::vector<int64_t>>& inputs, LmStepTimes* times) const {
  const auto start = std::chrono::steady_clock::now();
  const int64_t n = static_cast<int64_t>(rows.size());
  std::vector<int64_t> flat;
  std::vector<TransformerState*> states;
  for (size_t i = 0; i < rows.size(); ++i) {
    flat.insert(flat.end(), inputs[i].begin(), inputs[i].end());
    states.push_back(&rows[i]->state->transformer);
  }
  at::Tensor text_logits;
  const at::Tensor out =
      model_.text_step(at::tensor(flat, at::kLong).view({n, -1}), states, &text_logits);
  // One copy to the host for all rows (on a GPU, one transfer rather than one per row).
  const at::Tensor text_host = text_logits.to(at::kCPU, at::kFloat);
  std::vector<int64_t> text(rows.size());
  for (int64_t i = 0; i < n; ++i) {
    LmGenRow& row = *rows[static_cast<size_t>(i)];
    text[i] = sample_text(*row.state, *row.params, text_host[i]);
    if (row.trace) {
      row.trace->main_input = inputs[static_cast<size_t>(i)];
      row.trace->transformer_out = out[i].view({-1}).to(at::kCPU, at::kFloat);
      row.trace->text_logits = text_host[i];
    }
  }
  extra_heads(rows, out);
  const auto middle = std::chrono::steady_clock::now();
  const std::vector<std::vector<int64_t>> audio = depformer(rows, text, out);
  for (size_t i = 0; i < rows.size(); ++i)
    rows[i]->result = finish(*rows[i]->state, text[i], audio[i]);
  if (times) {
    using ms = std::chrono::duration<double, std::milli>;
    times->main_ms += ms(middle - start).count();
    times->depformer_ms += ms(std::chrono::steady_clock::now() - middle).count();
  }
}

std::optional<std::vector<int64_t>> LmGen::finish(LmGenState& state, int64_t text,
                                                  const std::vector<int64_t>& audio) const {
  const LmConfig& c = model_.config();
  auto slot = [&](int64_t k, int64_t step) -> int64_t& { return token_slot(state, c, k, step); };
  ++state.offset;
  slot(0, state.offset) = text;
  state.text_history.push(text);
  for (int i = 0; i < c.dep_q; ++i) slot(i + 1, state.offset) = audio[static_cast<size_t>(i)];
  if (state.offset <= c.max_delay()) return std::nullopt;
  std::vector<int64_t> result(static_cast<size_t>(c.dep_q + 1));
  for (int k = 0; k <= c.dep_q; ++k)
    result[static_cast<size_t>(k)] =
        slot(k, state.offset - c.max_delay() + c.delays[static_cast<size_t>(k)]);
  return result;
}

void LmGen::extra_heads(const std::vector<LmGenRow*>& rows,
                        const at::Tensor& transformer_out) const {
  const bool wanted =
      std::any_of(rows.begin(), rows.end(), [](const LmGenRow* r) { return r->extra_heads; });
  if (!wanted) return;
  // All rows in one product, as the text head: each row's result is its own (LmModel).
  const at::Tensor probs = model_.extra_heads(transformer_out).to(at::kCPU);
  for (size_t i = 0; i < rows.size(); ++i)
    if (rows[i]->extra_heads) *rows[i]->extra_heads = probs[static_cast<int64_t>(i)];
}

std::vector<std::vector<int64_t>> LmGen::depformer(const std::vector<LmGenRow*>& rows,
                                                   const std::vector<int64_t>& text,
                                                   const at::Tensor& transformer_out) const {
  const int dep_q = model_.config().dep_q;
  // Each row has its own depformer state, so its attention is computed exactly as it would be
  // alone.
  std::vector<TransformerState*> states;
  for (LmGenRow* row : rows) {
    row->state->depformer.offset = 0;  // a new step
    states.push_back(&row->state->depformer);
  }
  std::vector<std::vector<int64_t>> tokens(rows.size());
  std::vector<std::vector<at::Tensor>> logits(rows.size());
  std::vector<int64_t> previous = text;
  for (int cb = 0; cb < dep_q; ++cb) {
    const at::Tensor l =
        model_.depformer_step(cb, at::tensor(previous, at::kLong), transformer_out, states)
            .to(at::kCPU, at::kFloat);
    for (size_t i = 0; i < rows.size(); ++i) {
      const LmGenRow& row = *rows[i];
      previous[i] = row.state->sampler.sample(l[static_cast<int64_t>(i)], row.params->temperature,
                                              row.params->top_k);
      tokens[i].push_back(previous[i]);
      if (row.trace) logits[i].push_back(l[static_cast<int64_t>(i)]);
    }
  }
  const at::Tensor none = at::empty({0, model_.config().card}, at::kFloat);  // no depformer
  for (size_t i = 0; i < rows.size(); ++i)
    if (rows[i]->trace) rows[i]->trace->audio_logits = dep_q ? at::stack(logits[i]) : none;
  return tokens;
}

}  // namespace kyutai
