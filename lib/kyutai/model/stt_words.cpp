#include "kyutai/model/stt_words.h"

#include <algorithm>
#include <cstring>

namespace kyutai {

namespace {

// The script splits with Python's str.split(): runs of whitespace, none kept at either end.
std::vector<std::string> split_words(const std::string& text) {
  std::vector<std::string> words;
  std::string word;
  for (char c : text) {
    if (c != '\0' && std::strchr(" \t\n\r\v\f\x1c\x1d\x1e\x1f", c)) {
      if (!word.empty()) words.push_back(std::move(word));
      word.clear();
    } else {
      word += c;
    }
  }
  if (!word.empty()) words.push_back(std::move(word));
  return words;
}

}  // namespace

SttWordRule stt_word_rule(const LmConfig& config, double frame_rate, int silence_prefix_frames) {
  SttWordRule rule;
  rule.boundary = 0;  // the script's end_of_padding_id, a literal 0 there too
  rule.padding = config.existing_text_padding_id;
  rule.frame_rate = frame_rate;
  // As the script computes it: whole seconds of the prefix (its int() truncates), plus the delay.
  const double prefix_s = silence_prefix_frames / frame_rate;
  rule.offset_s = static_cast<double>(static_cast<int64_t>(prefix_s)) +
                  (config.stt ? config.stt->audio_delay_seconds : 0.0);
  return rule;
}

SttWords::SttWords(std::shared_ptr<const TextTokenizer> tokenizer, SttWordRule rule)
    : tokenizer_(std::move(tokenizer)), rule_(rule) {}

double SttWords::time(double position) const {
  return std::max(0.0, position / rule_.frame_rate - rule_.offset_s);
}

std::vector<SttWord> SttWords::push(int64_t token) {
  const int64_t at = position_++;
  if (token != rule_.boundary) {
    // Tokens before the first boundary belong to no segment, as in the script.
    if (start_ >= 0) tokens_.push_back(static_cast<int>(token));
    return {};
  }
  std::vector<SttWord> words;
  if (start_ >= 0) words = segment(static_cast<double>(start_), static_cast<double>(at), tokens_);
  start_ = at + 1;
  tokens_.clear();
  return words;
}

std::vector<SttWord> SttWords::finish() {
  if (start_ < 0) return {};
  const auto eos = std::find(tokens_.begin(), tokens_.end(), tokenizer_->eos_id());
  const double start = static_cast<double>(start_);
  std::vector<SttWord> words;
  if (eos != tokens_.end()) {
    words = segment(start, start + static_cast<double>(eos - tokens_.begin()),
                    std::vector<int>(tokens_.begin(), eos));
  } else {
    // Where the script's bound is fractional (more than a second left) it fails: the same
    // bound, in frames, ends the word here.
    const double end = std::min(static_cast<double>(position_), start + rule_.frame_rate);
    words = segment(start, end, tokens_);
  }
  start_ = -1;
  tokens_.clear();
  return words;
}

void SttWords::reset() {
  position_ = 0;
  start_ = -1;
  tokens_.clear();
}

std::vector<SttWord> SttWords::segment(double start, double end,
                                       const std::vector<int>& tokens) const {
  std::vector<int> text_ids;
  for (int t : tokens)
    if (t > rule_.padding) text_ids.push_back(t);
  const std::string text = tokenizer_->decode(text_ids);
  const std::vector<std::string> words = split_words(text);
  if (words.empty()) return {};
  // The general case: the decoded text as it is, over the whole segment.
  if (words.size() == 1) return {SttWord{text, time(start), time(end)}};
  // Words so close that no boundary parts them: each takes as many frames as it has tokens,
  // the last one the rest.
  std::vector<SttWord> out;
  for (size_t i = 0; i + 1 < words.size(); ++i) {
    const double n = static_cast<double>(tokenizer_->encode(words[i]).size());
    out.push_back(SttWord{words[i], time(start), time(start + n)});
    start += n;
  }
  out.push_back(SttWord{words.back(), time(start), time(end)});
  return out;
}

}  // namespace kyutai
