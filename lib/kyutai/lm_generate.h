// Internal: streaming generation with the Moshi LM (reference LMGen in moshi/models/lm.py):
// delays, the token cache, the first max-delay silent steps, and sampling. The generator holds
// no per-conversation data; each conversation has its own LmGenState.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <vector>

#include "kyutai/lm.h"
#include "kyutai/sampler.h"

namespace kyutai {

struct LmGenState {
  TransformerState transformer;
  // Ring of max_delay + 2 steps per stream (text, model audio, user audio); -2 = not known yet.
  std::vector<int64_t> cache;
  int64_t offset = 0;  // steps taken
  Sampler sampler;
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

class LmGen {
 public:
  explicit LmGen(const LmModel& model) : model_(model) {}
  LmGenState new_state(uint64_t seed) const;

  // Feeds one frame of the user's audio codes (at least n_q - dep_q of them; extra ones are
  // ignored) and generates one step. Returns the tokens of the frame max_delay steps back, all
  // streams realigned: [text, audio 0 .. dep_q-1], or nothing during the first max_delay steps.
  std::optional<std::vector<int64_t>> step(const std::vector<int64_t>& user_codes,
                                           LmGenState& state, const SamplingParams& params,
                                           LmStepTrace* trace = nullptr,
                                           LmStepTimes* times = nullptr) const;

 private:
  std::vector<int64_t> depformer(int64_t text_token, const at::Tensor& transformer_out,
                                 LmGenState& state, const SamplingParams& params,
                                 LmStepTrace* trace) const;
  const LmModel& model_;
};

}  // namespace kyutai
