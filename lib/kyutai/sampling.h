// Internal: token sampling (reference moshi/utils/sampling.py): greedy argmax at temperature 0,
// otherwise softmax at a temperature, restricted to the top k, drawn from a seeded generator.
// Torch-free: the public API uses SamplingParams.
#pragma once

#include <cstdint>
#include <random>

namespace at {
class Tensor;
}

namespace kyutai {

// The reference LMGen defaults.
struct SamplingParams {
  double temperature = 0.8;  // audio; 0 = greedy
  int top_k = 250;           // 0 = the whole vocabulary
  double text_temperature = 0.7;
  int text_top_k = 25;
};

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
