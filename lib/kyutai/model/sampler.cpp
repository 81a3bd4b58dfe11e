#include "kyutai/model/sampler.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <unordered_set>

#include "kyutai/error.h"

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

void check_sampling(const SamplingParams& params) {
  if (!(params.repetition_penalty > 0))
    throw InputError("the repetition penalty must be > 0, got " +
                     std::to_string(params.repetition_penalty));
  if (params.repetition_penalty_context < 0 ||
      params.repetition_penalty_context > kMaxRepetitionPenaltyContext)
    throw InputError("the repetition penalty context must be in [0, " +
                     std::to_string(kMaxRepetitionPenaltyContext) + "], got " +
                     std::to_string(params.repetition_penalty_context));
}

void TextHistory::push(int64_t token) {
  if (std::find(ignored_.begin(), ignored_.end(), token) != ignored_.end()) return;
  tokens_.push_back(token);
  if (tokens_.size() > static_cast<size_t>(kMaxRepetitionPenaltyContext)) tokens_.pop_front();
}

void TextHistory::penalize(float* logits, int64_t vocab, double penalty, int context) const {
  check_sampling(SamplingParams{0, 0, 0, 0, penalty, context});
  // The reference skips a penalty of exactly 1 and computes in float.
  const auto p = static_cast<float>(penalty);
  if (p == 1.0f) return;
  // Newest first; a token repeated in the window counts towards it but is penalised once.
  std::unordered_set<int64_t> seen;
  const size_t window = std::min(tokens_.size(), static_cast<size_t>(context));
  for (auto it = tokens_.rbegin(); it != tokens_.rbegin() + static_cast<std::ptrdiff_t>(window);
       ++it) {
    if (!seen.insert(*it).second || *it < 0 || *it >= vocab) continue;
    float& logit = logits[*it];
    if (logit >= 0)
      logit /= p;
    else
      logit *= p;
  }
}

}  // namespace kyutai
