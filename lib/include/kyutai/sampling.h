// Sampling settings of a conversation: temperatures and top-k for Moshi's text and audio tokens,
// and the repetition penalty on its text. Torch-free.
#pragma once

namespace kyutai {

// The reference LMGen defaults; the repetition penalty is off (1), as in Kyutai's servers.
struct SamplingParams {
  double temperature = 0.8;  // audio; 0 = greedy
  int top_k = 250;           // 0 = the whole vocabulary
  double text_temperature = 0.7;
  int text_top_k = 25;
  // Kyutai's Rust server (moshi-core lm_generate_multistream.rs): before the text token is
  // sampled, the logits of the distinct tokens among the last `repetition_penalty_context`
  // text tokens (padding not counted) are divided by the penalty when positive and multiplied
  // by it when negative. 1 = off; must be > 0. The context is 32 where Kyutai's Rust server is
  // given none, and at most kMaxRepetitionPenaltyContext.
  double repetition_penalty = 1.0;
  int repetition_penalty_context = 32;
};

// The most text tokens a conversation remembers for the repetition penalty.
constexpr int kMaxRepetitionPenaltyContext = 4096;

}  // namespace kyutai
