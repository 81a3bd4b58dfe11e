// The speech-to-text word rule (Kyutai's stt_from_file_pytorch.py, tokens_to_timestamped_text)
// on hand-written token sequences with the real lm_tiny tokenizer, streaming: each word comes
// out at the boundary that ends its segment, the last one at finish(). The expected words and
// times are worked out by hand from the rule; the comments show the arithmetic.
#include <gtest/gtest.h>

#include <vector>

#include "kyutai/config.h"
#include "kyutai/model/stt_words.h"
#include "kyutai/text.h"
#include "test_util.h"

namespace kyutai {
namespace {

// lm_tiny's tokenizer: 0 <unk> (the boundary), 2 </s> (its end of sentence), 3 <pad>,
// 4 "▁", 94 "H", 5 "e", 12 "l", 9 "o", 18 "▁the", 56 "▁you", 64 "▁this", 80 "▁work".
constexpr int B = 0, EOS = 2, P = 3;

std::shared_ptr<const TextTokenizer> tokenizer() {
  return TextTokenizer::load(test::data_path("golden/lm_tiny/tokenizer.model"));
}

// The rule of tests/data/stt_tiny: 12.5 Hz, 13 frames of silence first (1.0 s rounded up), so
// offset = int(13 / 12.5) + 0.5 = 1.5 s: position p is at p / 12.5 - 1.5 s, 25 at 0.5 s.
SttWordRule tiny_rule() {
  return stt_word_rule(LmConfig::from_file(test::data_path("stt_tiny/config.json")), 12.5, 13);
}

// `count` padding tokens.
std::vector<int64_t> pads(int count) {
  return std::vector<int64_t>(static_cast<size_t>(count), P);
}

struct Pushed {
  std::vector<SttWord> words;
  std::vector<int64_t> emitted_at;  // the position of the token that completed each word
};

// Pushes `tokens` one by one, then finishes when told.
Pushed push_all(SttWords& w, const std::vector<int64_t>& tokens, bool finish = true) {
  Pushed r;
  for (size_t i = 0; i < tokens.size(); ++i)
    for (SttWord& word : w.push(tokens[i])) {
      r.words.push_back(word);
      r.emitted_at.push_back(static_cast<int64_t>(i));
    }
  if (finish)
    for (SttWord& word : w.finish()) {
      r.words.push_back(word);
      r.emitted_at.push_back(-1);
    }
  return r;
}

std::vector<int64_t> concat(std::initializer_list<std::vector<int64_t>> parts) {
  std::vector<int64_t> all;
  for (const auto& p : parts) all.insert(all.end(), p.begin(), p.end());
  return all;
}

void expect_word(const SttWord& w, const std::string& text, double start, double end) {
  EXPECT_EQ(w.text, text);
  EXPECT_NEAR(w.start_s, start, 1e-9) << text;
  EXPECT_NEAR(w.end_s, end, 1e-9) << text;
}

TEST(SttWords, TheOffsetTruncatesThePrefixToWholeSeconds) {
  const SttWordRule rule = tiny_rule();
  EXPECT_EQ(rule.boundary, 0);
  EXPECT_EQ(rule.padding, 3);
  EXPECT_DOUBLE_EQ(rule.offset_s, 1.5);  // int(13 / 12.5) = int(1.04) = 1, plus 0.5
}

TEST(SttWords, OneWordBetweenTwoBoundariesAfterLeadingPads) {
  SttWords w(tokenizer(), tiny_rule());
  // A word before the first boundary (64 at 5) belongs to no segment; the boundary at 24 opens
  // [25, 37): "▁the" then pads; the boundary at 37 completes it.
  std::vector<int64_t> t = concat({pads(5), {64}, pads(18), {B, 18}, pads(11), {B}, pads(3)});
  ASSERT_EQ(t[24], B);
  ASSERT_EQ(t[37], B);
  const Pushed r = push_all(w, t, false);
  ASSERT_EQ(r.words.size(), 1u);
  expect_word(r.words[0], "the", 0.5, 1.46);  // 25/12.5 - 1.5, 37/12.5 - 1.5
  EXPECT_EQ(r.emitted_at[0], 37);
}

TEST(SttWords, SeveralWordsInOneSegmentShareItByTheirTokenCounts) {
  auto tok = tokenizer();
  ASSERT_EQ(tok->encode("Hello").size(), 6u);  // ▁ H e l l o
  SttWords w(tok, tiny_rule());
  // Boundary at 24; "▁Hello" (6 tokens) and "▁the" at 25..31; pads; boundary at 50.
  std::vector<int64_t> t = concat({pads(24), {B, 4, 94, 5, 12, 12, 9, 18}, pads(18), {B}});
  ASSERT_EQ(t.size(), 51u);
  const Pushed r = push_all(w, t);
  ASSERT_EQ(r.words.size(), 2u);
  expect_word(r.words[0], "Hello", 0.5, 0.98);  // [25, 25 + 6): 31/12.5 - 1.5 = 0.98
  expect_word(r.words[1], "the", 0.98, 2.5);    // [31, 50): 50/12.5 - 1.5 = 2.5
  EXPECT_EQ(r.emitted_at[0], 50);
  EXPECT_EQ(r.emitted_at[1], 50);
}

TEST(SttWords, TheLastWordEndsAtTheEndOfSentence) {
  SttWords w(tokenizer(), tiny_rule());
  // Boundary at 24, "▁you" at 25, </s> at 30, pads to the end (40 tokens).
  const Pushed r = push_all(w, concat({pads(24), {B, 56}, pads(4), {EOS}, pads(9)}));
  ASSERT_EQ(r.words.size(), 1u);
  expect_word(r.words[0], "you", 0.5, 0.9);  // [25, 30): 30/12.5 - 1.5 = 0.9
  EXPECT_EQ(r.emitted_at[0], -1);            // at finish()
  EXPECT_TRUE(w.finish().empty());           // once
}

TEST(SttWords, WithoutEndOfSentenceTheLastWordEndsWithTheStream) {
  SttWords w(tokenizer(), tiny_rule());
  // Boundary at 24, "▁you" at 25, 30 tokens in all: the end is min(30, 25 + 12.5) = 30.
  const Pushed r = push_all(w, concat({pads(24), {B, 56}, pads(4)}));
  ASSERT_EQ(r.words.size(), 1u);
  expect_word(r.words[0], "you", 0.5, 0.9);
}

TEST(SttWords, WithoutEndOfSentenceTheLastWordLastsASecondAtMost) {
  SttWords w(tokenizer(), tiny_rule());
  // 60 tokens: the end is min(60, 25 + 12.5) = 37.5 frames (where the script fails).
  const Pushed r = push_all(w, concat({pads(24), {B, 56}, pads(34)}));
  ASSERT_EQ(r.words.size(), 1u);
  expect_word(r.words[0], "you", 0.5, 1.5);  // 37.5/12.5 - 1.5 = 1.5
}

TEST(SttWords, TimesBeforeTheOffsetAreClampedAtZero) {
  SttWords w(tokenizer(), tiny_rule());
  // Boundary at 2, "▁work" at 3, boundary at 10: 3/12.5 - 1.5 and 10/12.5 - 1.5 are negative;
  // then a word across 0: [16, 25) -> 0 and 0.5.
  const Pushed r =
      push_all(w, concat({pads(2), {B, 80}, pads(6), {B}, pads(4), {B, 18}, pads(8), {B}}));
  ASSERT_EQ(r.words.size(), 2u);
  expect_word(r.words[0], "work", 0.0, 0.0);
  expect_word(r.words[1], "the", 0.0, 0.5);
}

TEST(SttWords, EmptySegmentsGiveNoWordsAndResetStartsOver) {
  SttWords w(tokenizer(), tiny_rule());
  // Two boundaries in a row, a segment of pads and ends of sentence only, then a word.
  const Pushed first = push_all(w, concat({{B, B}, pads(3), {EOS, B}}), false);
  EXPECT_TRUE(first.words.empty());
  w.reset();  // positions count from 0 again
  const Pushed r = push_all(w, concat({pads(24), {B, 18}, pads(4), {B}}));
  ASSERT_EQ(r.words.size(), 1u);
  expect_word(r.words[0], "the", 0.5, 0.9);
}

}  // namespace
}  // namespace kyutai
