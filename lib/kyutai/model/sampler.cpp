#include "kyutai/model/sampler.h"

#include <ATen/ATen.h>

#include <cmath>
#include <numeric>

namespace kyutai {

int64_t Sampler::sample(const at::Tensor& logits, double temperature, int top_k) {
  const at::Tensor l = logits.to(at::kCPU, at::kFloat).contiguous().view({-1});
  if (temperature <= 0) return l.argmax().item<int64_t>();  // first maximum on ties
  at::Tensor probs = at::softmax(l / temperature, 0);
  at::Tensor index;
  if (top_k > 0 && top_k < probs.size(0)) {
    auto top = at::topk(probs, top_k);
    probs = std::get<0>(top).contiguous();
    index = std::get<1>(top);
  }
  // Inverse-CDF draw over the (unnormalised) kept probabilities.
  const float* p = probs.data_ptr<float>();
  const int64_t n = probs.size(0);
  const double total = std::accumulate(p, p + n, 0.0);
  double r = std::uniform_real_distribution<double>(0.0, total)(rng_);
  int64_t pick = n - 1;
  for (int64_t i = 0; i < n; ++i) {
    r -= p[i];
    if (r < 0) {
      pick = i;
      break;
    }
  }
  return index.defined() ? index[pick].item<int64_t>() : pick;
}

}  // namespace kyutai
