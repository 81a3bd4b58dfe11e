// Internal: the words of a speech-to-text stream, cut from its text tokens by the rule of
// Kyutai's script (delayed-streams-modeling, scripts/stt_from_file_pytorch.py,
// tokens_to_timestamped_text), streaming: token `boundary` starts a word; a segment (the tokens
// between two boundaries) is complete when the next boundary arrives, and the last one at
// finish(). docs/STT.md states the rule and where it differs from Kyutai's Rust server.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kyutai/config.h"
#include "kyutai/stt.h"
#include "kyutai/text.h"

namespace kyutai {

struct SttWordRule {
  int boundary = 0;  // the end of padding, where a word starts
  int padding = 3;   // tokens up to padding (boundary, end of sentence) are not text
  double frame_rate = 12.5;
  // Subtracted from every time, as the script computes it: int(silence prefix frames /
  // frame_rate) + audio_delay_seconds. Times are then clamped at 0.
  double offset_s = 0;
};

// The rule of a speech-to-text model whose stream starts with `silence_prefix_frames` frames of
// silence (its config gives the padding id and the delay).
SttWordRule stt_word_rule(const LmConfig& config, double frame_rate, int silence_prefix_frames);

class SttWords {
 public:
  SttWords(std::shared_ptr<const TextTokenizer> tokenizer, SttWordRule rule);
  // The text token of the next step; returns the words it completes, in order.
  std::vector<SttWord> push(int64_t token);
  // The open segment's words: up to the tokenizer's end-of-sentence token if one follows the
  // last boundary, else every token left, the end time at most one second (frame_rate frames)
  // after the segment's start, as the script bounds it. The stream may then go on or reset.
  std::vector<SttWord> finish();
  void reset();
  // Words and times of the segment of `tokens` at positions [start, end), as the script
  // splits it (a segment holding several words gives each as many frames as it has tokens).
  std::vector<SttWord> segment(double start, double end, const std::vector<int>& tokens) const;

 private:
  double time(double position) const;

  std::shared_ptr<const TextTokenizer> tokenizer_;
  SttWordRule rule_;
  int64_t position_ = 0;     // tokens seen: the position of the next one
  int64_t start_ = -1;       // the open segment's first position; -1 before the first boundary
  std::vector<int> tokens_;  // the open segment's tokens
};

}  // namespace kyutai
