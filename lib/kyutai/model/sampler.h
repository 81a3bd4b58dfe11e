// Internal: token sampling (reference moshi/utils/sampling.py): greedy argmax at temperature 0,
// otherwise softmax at a temperature, restricted to the top k, drawn from a seeded generator.
// Torch-free; the public settings are SamplingParams (sampling.h).
#pragma once

#include <cstdint>
#include <random>

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

}  // namespace kyutai
