// Internal: token sampling (reference moshi/utils/sampling.py): greedy argmax at temperature 0,
// otherwise softmax at a temperature, restricted to the top k, drawn from a seeded generator;
// and the text history behind the repetition penalty of Kyutai's Rust server.
// Torch-free; the public settings are SamplingParams (sampling.h).
#pragma once

#include <cstdint>
#include <deque>
#include <random>
#include <vector>

#include "kyutai/sampling.h"

namespace at {
class Tensor;
}

namespace kyutai {

class Sampler {
 public:
  explicit Sampler(uint64_t seed = 0) : rng_(seed) {}
  void seed(uint64_t seed) { rng_.seed(seed); }
  // logits [V] (any float dtype, any device) -> a token in [0, V).
  int64_t sample(const at::Tensor& logits, double temperature, int top_k);

 private:
  std::mt19937_64 rng_;
};

// The text tokens one conversation produced, for the repetition penalty (moshi-core's
// State::apply_repetition_penalty). The tokens it never counts (padding, end of padding, the
// start token) are not stored, and only the newest kMaxRepetitionPenaltyContext are kept, so
// that the memory stays bounded however long the conversation.
class TextHistory {
 public:
  explicit TextHistory(std::vector<int64_t> ignored = {}) : ignored_(std::move(ignored)) {}
  void push(int64_t token);
  // logits [V] (float, host): the penalty applied in place as the reference does, in float.
  // Throws InputError for a penalty <= 0 or a context outside [0, kMaxRepetitionPenaltyContext].
  void penalize(float* logits, int64_t vocab, double penalty, int context) const;
  size_t size() const { return tokens_.size(); }

 private:
  std::vector<int64_t> ignored_;
  std::deque<int64_t> tokens_;  // oldest first
};

// Throws InputError for settings no step can use (a penalty <= 0, a context out of range).
void check_sampling(const SamplingParams& params);

}  // namespace kyutai
