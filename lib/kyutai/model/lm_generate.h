// Internal: streaming generation with the Moshi LM (reference LMGen in moshi/models/lm.py):
// delays, the token cache, the first max-delay silent steps, and sampling. The generator holds
// no per-conversation data; each conversation has its own LmGenState.
#pragma once

#include <ATen/core/Tensor.h>

#include <exception>
#include <optional>
#include <vector>

#include "kyutai/model/lm.h"
#include "kyutai/model/sampler.h"

namespace kyutai {

struct LmGenState {
  TransformerState transformer;
  // The depformer's state: it starts afresh at every step (offset 0), and its KV ring is written
  // before it is read, so the one allocated with the conversation serves every step.
  TransformerState depformer;
  // Ring of max_delay + 2 steps per stream (text, model audio, user audio); -2 = not known yet.
  std::vector<int64_t> cache;
  int64_t offset = 0;  // steps taken
  Sampler sampler;
  TextHistory text_history;  // the text tokens sampled so far, for the repetition penalty
};

// What one step computed, for parity tests.
struct LmStepTrace {
  std::vector<int64_t> main_input;  // [K] tokens fed to the temporal transformer
  at::Tensor transformer_out;       // [dim], after out_norm
  at::Tensor text_logits;           // [text_card]
  at::Tensor audio_logits;          // [dep_q, card]
};

// Where one step's time went, for benchmarks.
struct LmStepTimes {
  double main_ms = 0;       // temporal transformer, text head and text sampling
  double depformer_ms = 0;  // the dep_q depformer passes and audio sampling
};

// One conversation's part of a batched step (LmGen::step_batch): its input, state and
// settings, then its result or its error.
struct LmGenRow {
  const std::vector<int64_t>* user_codes = nullptr;
  LmGenState* state = nullptr;
  const SamplingParams* params = nullptr;
  LmStepTrace* trace = nullptr;
  // Where to put the extra heads' probabilities of this step, [heads, extra_heads_dim] float32
  // on the CPU (LmModel::extra_heads); null: not computed for this row.
  at::Tensor* extra_heads = nullptr;
  std::optional<std::vector<int64_t>> result;  // as LmGen::step returns it
  std::exception_ptr error;                    // instead of a result: this row failed
};

class LmGen {
 public:
  // `kv`: how the temporal transformer's KV cache of each new state stores keys and values.
  explicit LmGen(const LmModel& model, KvCacheFormat kv = KvCacheFormat::Model)
      : model_(model), kv_(kv) {}
  LmGenState new_state(uint64_t seed) const;

  // Feeds one frame of the user's audio codes (at least n_q - dep_q of them; extra ones are
  // ignored) and generates one step. Returns the tokens of the frame max_delay steps back, all
  // streams realigned: [text, audio 0 .. dep_q-1], or nothing during the first max_delay steps.
  // `extra_heads`: as LmGenRow::extra_heads.
  std::optional<std::vector<int64_t>> step(const std::vector<int64_t>& user_codes,
                                           LmGenState& state, const SamplingParams& params,
                                           LmStepTrace* trace = nullptr,
                                           LmStepTimes* times = nullptr,
                                           at::Tensor* extra_heads = nullptr) const;
  // One step of several conversations through the model together (reference LMGen with a
  // batch dimension): each row gets exactly what step() would give it alone, tokens and
  // logits, whatever the other rows (on the CPU; see LmModel::text_step). A row whose input is
  // refused gets its error and leaves its state as it was; the others go on. Rows must hold
  // distinct states.
  void step_batch(std::vector<LmGenRow>& rows, LmStepTimes* times = nullptr) const;

 private:
  // Checks a row's user codes and writes them into its token ring; returns the tokens the
  // temporal transformer reads this step [K].
  std::vector<int64_t> prepare(const std::vector<int64_t>& user_codes, LmGenState& state) const;
  // Stores a step's generated tokens and returns the realigned frame, if there is one yet.
  std::optional<std::vector<int64_t>> finish(LmGenState& state, int64_t text,
                                             const std::vector<int64_t>& audio) const;
  // One pass of at most LinearWeight::kExactRows rows, all prepared.
  void pass(const std::vector<LmGenRow*>& rows, const std::vector<std::vector<int64_t>>& inputs,
            LmStepTimes* times) const;
  // Fills the extra heads of the rows that ask for them, from the temporal outputs [N, 1, dim].
  void extra_heads(const std::vector<LmGenRow*>& rows, const at::Tensor& transformer_out) const;
  // Audio tokens [N][dep_q] of the rows, from their text tokens and temporal outputs
  // [N, 1, dim].
  std::vector<std::vector<int64_t>> depformer(const std::vector<LmGenRow*>& rows,
                                              const std::vector<int64_t>& text,
                                              const at::Tensor& transformer_out) const;
  const LmModel& model_;
  KvCacheFormat kv_;
};

}  // namespace kyutai
