// The repetition penalty of Kyutai's Rust server (moshi-core lm_generate_multistream.rs,
// State::apply_repetition_penalty), bit for bit: which tokens it counts, over what window, the
// float arithmetic; that its default (1) leaves a conversation exactly as it was; and that LmGen
// applies it to the text logits of each step from the conversation's own history.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <unordered_set>

#include "kyutai/error.h"
#include "kyutai/model/lm.h"
#include "kyutai/model/lm_generate.h"
#include "kyutai/model/sampler.h"
#include "test_util.h"

namespace kyutai {
namespace {

constexpr int64_t kPad = 3, kEndPad = 0, kStart = 32000;

TextHistory history_of(const std::vector<int64_t>& tokens) {
  TextHistory h({kPad, kEndPad, kStart});
  for (int64_t t : tokens) h.push(t);
  return h;
}

TEST(RepetitionPenalty, DividesPositiveAndMultipliesNegativeLogitsInFloat) {
  std::vector<float> logits = {0.1f, 2.5f, -1.25f, 0.0f, 7.3f, -0.3f, 1.0f};
  const std::vector<float> before = logits;
  history_of({1, 2, 4, 5}).penalize(logits.data(), 7, 1.3, 32);
  const float p = 1.3f;
  EXPECT_EQ(logits[0], before[0]);
  EXPECT_EQ(logits[1], before[1] / p);
  EXPECT_EQ(logits[2], before[2] * p);
  EXPECT_EQ(logits[3], before[3]);
  EXPECT_EQ(logits[4], before[4] / p);
  EXPECT_EQ(logits[5], before[5] * p);
  EXPECT_EQ(logits[6], before[6]);
}

TEST(RepetitionPenalty, PenalisesARepeatedTokenOnceAndCountsItInTheWindow) {
  std::vector<float> logits(8, 2.0f);
  // Newest first the window of 3 is 6, 6, 5: token 4 is outside it, 6 is divided once.
  history_of({4, 5, 6, 6}).penalize(logits.data(), 8, 2.0, 3);
  EXPECT_EQ(logits[4], 2.0f);
  EXPECT_EQ(logits[5], 1.0f);
  EXPECT_EQ(logits[6], 1.0f);
}

TEST(RepetitionPenalty, PaddingEndOfPaddingAndStartAreNeitherPenalisedNorCounted) {
  std::vector<float> logits(8, 2.0f);
  // The window of 2 reaches back over the padding to 5 and 7.
  history_of({1, 5, kPad, kEndPad, 7, kPad, kStart, kPad}).penalize(logits.data(), 8, 2.0, 2);
  EXPECT_EQ(logits[kPad], 2.0f);
  EXPECT_EQ(logits[kEndPad], 2.0f);
  EXPECT_EQ(logits[1], 2.0f);
  EXPECT_EQ(logits[5], 1.0f);
  EXPECT_EQ(logits[7], 1.0f);
}

TEST(RepetitionPenalty, OneOrAnEmptyWindowChangesNothing) {
  const std::vector<float> before = {0.5f, -0.5f, 3.0f};
  std::vector<float> logits = before;
  history_of({0, 1, 2}).penalize(logits.data(), 3, 1.0, 32);
  EXPECT_EQ(logits, before);
  history_of({0, 1, 2}).penalize(logits.data(), 3, 1.7, 0);
  EXPECT_EQ(logits, before);
  TextHistory().penalize(logits.data(), 3, 1.7, 32);
  EXPECT_EQ(logits, before);
}

TEST(RepetitionPenalty, TokensOutsideTheVocabularyAreSkipped) {
  std::vector<float> logits = {1.0f, 1.0f};
  history_of({1, 9}).penalize(logits.data(), 2, 2.0, 32);
  EXPECT_EQ(logits[0], 1.0f);
  EXPECT_EQ(logits[1], 0.5f);
}

TEST(RepetitionPenalty, HistoryIsBounded) {
  TextHistory h;
  for (int i = 0; i < kMaxRepetitionPenaltyContext + 100; ++i) h.push(i + 10);
  EXPECT_EQ(h.size(), static_cast<size_t>(kMaxRepetitionPenaltyContext));
}

TEST(RepetitionPenalty, RefusesSettingsNoStepCanUse) {
  std::vector<float> logits(4, 1.0f);
  const TextHistory h = history_of({1});
  EXPECT_THROW(h.penalize(logits.data(), 4, 0.0, 32), InputError);
  EXPECT_THROW(h.penalize(logits.data(), 4, -1.0, 32), InputError);
  EXPECT_THROW(h.penalize(logits.data(), 4, 1.5, -1), InputError);
  EXPECT_THROW(h.penalize(logits.data(), 4, 1.5, kMaxRepetitionPenaltyContext + 1), InputError);
  EXPECT_THROW(check_sampling(SamplingParams{0.8, 250, 0.7, 25, 0.0, 32}), InputError);
  EXPECT_NO_THROW(check_sampling(SamplingParams{}));
}

// LmGen on the golden tiny LM: one conversation's text tokens and text logits per step.
class PenaltyInLmGen : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string dir = test::data_path("golden/lm_tiny/");
    model_ = new LmModel(LmConfig::from_file(dir + "config.json"));
    model_->load(dir + "model.safetensors", at::kCPU);
  }
  static void TearDownTestSuite() { delete model_; }

  struct Run {
    std::vector<int64_t> text;       // realigned text tokens, one per ready step
    std::vector<at::Tensor> logits;  // raw text logits [V], one per step
  };
  static Run run(const SamplingParams& params, int steps) {
    const LmGen gen(*model_);
    LmGenState state = gen.new_state(7);
    at::manual_seed(3);
    const at::Tensor codes = at::randint(0, model_->config().card, {steps, 8}, at::kLong);
    Run r;
    for (int s = 0; s < steps; ++s) {
      const at::Tensor row = codes[s].contiguous();
      LmStepTrace trace;
      const auto out =
          gen.step({row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + 8}, state, params, &trace);
      r.logits.push_back(trace.text_logits);
      if (out) r.text.push_back((*out)[0]);
    }
    return r;
  }
  static LmModel* model_;
};

LmModel* PenaltyInLmGen::model_ = nullptr;

TEST_F(PenaltyInLmGen, TheDefaultLeavesTheConversationUnchanged) {
  SamplingParams explicit_off;
  explicit_off.repetition_penalty = 1.0;
  explicit_off.repetition_penalty_context = 200;
  const Run a = run(SamplingParams{}, 30), b = run(explicit_off, 30);
  EXPECT_EQ(a.text, b.text);
  for (size_t i = 0; i < a.logits.size(); ++i) EXPECT_TRUE(at::equal(a.logits[i], b.logits[i]));
}

// Greedy text: each token is the argmax of the step's logits penalised, as the reference does,
// by the distinct non-padding tokens among the last `context` ones before it.
TEST_F(PenaltyInLmGen, EachTextTokenIsTheArgmaxOfItsPenalisedLogits) {
  const LmConfig& c = model_->config();
  SamplingParams params{0.8, 250, 0.0, 0, 3.0, 4};
  const Run r = run(params, 40);
  std::vector<int64_t> sampled;  // every step's text token, rebuilt from the logits
  bool changed = false;
  for (const at::Tensor& raw : r.logits) {
    at::Tensor l = raw.clone();
    std::unordered_set<int64_t> seen;
    int counted = 0;
    for (auto it = sampled.rbegin(); it != sampled.rend() && counted < 4; ++it) {
      if (*it == c.existing_text_padding_id || *it == c.existing_text_end_padding_id) continue;
      ++counted;
      if (!seen.insert(*it).second) continue;
      float& v = l.data_ptr<float>()[*it];
      v = v >= 0 ? v / 3.0f : v * 3.0f;
    }
    sampled.push_back(l.argmax().item<int64_t>());
    changed |= sampled.back() != raw.argmax().item<int64_t>();
  }
  const size_t delay = static_cast<size_t>(c.delays[0]);
  ASSERT_FALSE(r.text.empty());
  for (size_t j = 0; j < r.text.size(); ++j) EXPECT_EQ(r.text[j], sampled[delay + j]) << j;
  EXPECT_TRUE(changed) << "the penalty never changed a token: the test proves nothing";
}

TEST_F(PenaltyInLmGen, AStepWithABadPenaltyIsRefused) {
  const LmGen gen(*model_);
  LmGenState state = gen.new_state(1);
  SamplingParams bad;
  bad.repetition_penalty = 0;
  EXPECT_THROW(gen.step(std::vector<int64_t>(8, 0), state, bad), InputError);
  EXPECT_EQ(state.offset, 0);
}

}  // namespace
}  // namespace kyutai
