// Sampling settings of a conversation: temperatures and top-k for Moshi's text and audio tokens.
// Torch-free.
#pragma once

namespace kyutai {

// The reference LMGen defaults.
struct SamplingParams {
  double temperature = 0.8;  // audio; 0 = greedy
  int top_k = 250;           // 0 = the whole vocabulary
  double text_temperature = 0.7;
  int text_top_k = 25;
};

}  // namespace kyutai
