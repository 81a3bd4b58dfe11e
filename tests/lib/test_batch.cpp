// Many conversations on one model: LmGen::step_batch gives each conversation exactly what it
// gets alone (golden lm_tiny trace, long random runs, staggered starts, leaving, resets,
// per-conversation sampling, refused input), the scheduler behind MoshiConversation batches
// conversations of several threads without ever waiting unboundedly, and a conversation's step
// statistics count what it did.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "kyutai/api/batch_scheduler.h"
#include "kyutai/error.h"
#include "kyutai/model/lm.h"
#include "kyutai/model/lm_generate.h"
#include "kyutai/moshi.h"
#include "kyutai/safetensors.h"
#include "test_util.h"

namespace kyutai {
namespace {

using test::data_path;

constexpr double kLogitTol = 1e-6;

std::string tiny(const std::string& file) {
  return data_path("golden/lm_tiny/" + file);
}

using Frames = std::vector<std::vector<int64_t>>;  // user codes, one frame per step

// What one step gave a conversation.
struct StepOut {
  std::optional<std::vector<int64_t>> tokens;
  at::Tensor text_logits, audio_logits;
};

::testing::AssertionResult same_step(const StepOut& a, const StepOut& b) {
  if (a.tokens != b.tokens) return ::testing::AssertionFailure() << "tokens differ";
  const double text = (a.text_logits - b.text_logits).abs().max().item<double>();
  const double audio = (a.audio_logits - b.audio_logits).abs().max().item<double>();
  if (text > kLogitTol || audio > kLogitTol)
    return ::testing::AssertionFailure() << "logits differ by " << text << " / " << audio;
  return ::testing::AssertionSuccess();
}

// One conversation of a batched run: its frames, seed and sampling, and the steps at which it
// does something.
struct Plan {
  Frames frames;
  uint64_t seed = 0;
  SamplingParams params{0.0, 0, 0.0, 0};
  int start = 0;               // first step of the run at which it takes part
  int stop = 1 << 30;          // it leaves before this step
  std::vector<int> skipped;    // steps of the run without a frame from it
  int reset_at = -1;           // it starts a new conversation (seed + 1) before this step
  bool active(int s) const {
    return s >= start && s < stop &&
           std::find(skipped.begin(), skipped.end(), s) == skipped.end();
  }
};

class Batch : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = new LmModel(LmConfig::from_file(tiny("config.json")));
    model_->load(tiny("model.safetensors"), at::kCPU);
    const auto trace = read_tensors(tiny("trace.safetensors"));
    const at::Tensor user = trace.at("user_codes")[0];  // [8, 40]
    trace_frames_ = new Frames;
    for (int64_t s = 0; s < user.size(1); ++s) {
      const at::Tensor col = user.select(1, s).contiguous();
      trace_frames_->emplace_back(col.data_ptr<int64_t>(), col.data_ptr<int64_t>() + col.numel());
    }
    out_tokens_ = new at::Tensor(trace.at("out_tokens")[0]);  // [9, 40]
  }
  static void TearDownTestSuite() {
    delete model_;
    delete trace_frames_;
    delete out_tokens_;
  }

  static Frames random_frames(int steps, uint64_t seed) {
    at::manual_seed(seed);
    const at::Tensor codes = at::randint(0, model_->config().card, {steps, 8}, at::kLong);
    Frames f;
    for (int s = 0; s < steps; ++s) {
      const at::Tensor row = codes[s].contiguous();
      f.emplace_back(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + 8);
    }
    return f;
  }
  // The trace's frames starting at `shift`, round and round.
  static Frames trace_frames(int shift, int steps) {
    Frames f;
    for (int s = 0; s < steps; ++s) f.push_back((*trace_frames_)[(s + shift) % trace_frames_->size()]);
    return f;
  }

  // The plan's conversation alone: its outputs, one per step it takes.
  static std::vector<StepOut> solo(const Plan& p, int run_steps) {
    const LmGen gen(*model_);
    LmGenState state = gen.new_state(p.seed);
    std::vector<StepOut> outs;
    size_t next = 0;
    for (int s = 0; s < run_steps; ++s) {
      if (s == p.reset_at) state = gen.new_state(p.seed + 1);
      if (!p.active(s)) continue;
      LmStepTrace trace;
      StepOut o;
      o.tokens = gen.step(p.frames[next++], state, p.params, &trace);
      o.text_logits = trace.text_logits;
      o.audio_logits = trace.audio_logits;
      outs.push_back(o);
    }
    return outs;
  }

  // All the plans together: at each step one step_batch over the active conversations.
  static std::vector<std::vector<StepOut>> batched(const std::vector<Plan>& plans, int run_steps,
                                                   std::vector<int>* sizes = nullptr) {
    const LmGen gen(*model_);
    std::vector<LmGenState> states;
    for (const Plan& p : plans) states.push_back(gen.new_state(p.seed));
    std::vector<std::vector<StepOut>> outs(plans.size());
    std::vector<size_t> next(plans.size(), 0);
    for (int s = 0; s < run_steps; ++s) {
      std::vector<LmGenRow> rows;
      std::vector<LmStepTrace> traces(plans.size());
      std::vector<size_t> who;
      for (size_t i = 0; i < plans.size(); ++i) {
        if (s == plans[i].reset_at) states[i] = gen.new_state(plans[i].seed + 1);
        if (!plans[i].active(s)) continue;
        LmGenRow row;
        row.user_codes = &plans[i].frames[next[i]++];
        row.state = &states[i];
        row.params = &plans[i].params;
        row.trace = &traces[i];
        rows.push_back(row);
        who.push_back(i);
      }
      if (rows.empty()) continue;
      gen.step_batch(rows);
      if (sizes) sizes->push_back(static_cast<int>(rows.size()));
      for (size_t r = 0; r < rows.size(); ++r) {
        if (rows[r].error) std::rethrow_exception(rows[r].error);
        const size_t i = who[r];
        outs[i].push_back({rows[r].result, traces[i].text_logits, traces[i].audio_logits});
      }
    }
    return outs;
  }

  static void expect_solo(const std::vector<Plan>& plans, int run_steps) {
    const auto together = batched(plans, run_steps);
    for (size_t i = 0; i < plans.size(); ++i) {
      const auto alone = solo(plans[i], run_steps);
      ASSERT_EQ(together[i].size(), alone.size()) << "conversation " << i;
      for (size_t s = 0; s < alone.size(); ++s)
        EXPECT_TRUE(same_step(together[i][s], alone[s])) << "conversation " << i << " step " << s;
    }
  }

  static LmModel* model_;
  static Frames* trace_frames_;
  static at::Tensor* out_tokens_;
};
LmModel* Batch::model_ = nullptr;
Frames* Batch::trace_frames_ = nullptr;
at::Tensor* Batch::out_tokens_ = nullptr;

TEST_F(Batch, GoldenTraceInCompanyOf1To5Conversations) {
  for (int n : {1, 2, 3, 5}) {
    std::vector<Plan> plans(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      plans[i].frames = trace_frames(7 * i, 40);
      plans[i].seed = static_cast<uint64_t>(i);
    }
    std::vector<int> sizes;
    const auto together = batched(plans, 40, &sizes);
    EXPECT_EQ(sizes.front(), n);
    // Conversation 0 is the reference's trace, whoever keeps it company.
    for (int64_t s = 1; s < 40; ++s) {
      ASSERT_TRUE(together[0][s].tokens.has_value()) << "n " << n << " step " << s;
      EXPECT_TRUE(at::equal(at::tensor(*together[0][s].tokens), out_tokens_->select(1, s)))
          << "n " << n << " step " << s;
    }
    expect_solo(plans, 40);
  }
}

TEST_F(Batch, LongRandomRunWithSamplingPerConversation) {
  // Past the context (16) several times, each conversation with its own sampling and seed.
  const std::vector<SamplingParams> params = {
      {0.0, 0, 0.0, 0}, {0.8, 250, 0.7, 25}, {1.2, 5, 0.0, 0}, {0.5, 0, 1.0, 3}, {1.0, 1, 1.0, 1}};
  std::vector<Plan> plans(params.size());
  for (size_t i = 0; i < plans.size(); ++i) {
    plans[i].frames = random_frames(70, 100 + i);
    plans[i].seed = 1000 + i;
    plans[i].params = params[i];
  }
  expect_solo(plans, 70);
}

TEST_F(Batch, StaggeredStartsLeavingSkippingAndResets) {
  std::vector<Plan> plans(4);
  for (size_t i = 0; i < plans.size(); ++i) {
    plans[i].frames = random_frames(50, 200 + i);
    plans[i].seed = 7 + i;
    plans[i].params = {0.9, 50, 0.8, 10};
    plans[i].start = static_cast<int>(3 * i);  // joins late
  }
  plans[1].stop = 20;                    // leaves mid-run
  plans[2].reset_at = 15;                // new conversation while the others go on
  plans[3].skipped = {18, 19, 20, 30};   // no frame: not stepped, its state does not move
  expect_solo(plans, 45);
}

TEST_F(Batch, MoreConversationsThanExactRows) {
  // 18 conversations: the step runs in passes of at most LinearWeight::kExactRows rows.
  std::vector<Plan> plans(18);
  for (size_t i = 0; i < plans.size(); ++i) {
    plans[i].frames = random_frames(6, 300 + i);
    plans[i].seed = i;
    plans[i].params = {0.8, 250, 0.7, 25};
  }
  expect_solo(plans, 6);
}

TEST_F(Batch, RefusedInputStopsOnlyItsConversation) {
  const LmGen gen(*model_);
  LmGenState good = gen.new_state(0), bad = gen.new_state(0);
  const std::vector<int64_t> codes = (*trace_frames_)[0];
  std::vector<int64_t> wrong = codes;
  wrong[3] = 64;  // card is 64
  const SamplingParams greedy{0.0, 0, 0.0, 0};
  std::vector<LmGenRow> rows(2);
  rows[0].user_codes = &codes;
  rows[0].state = &good;
  rows[0].params = &greedy;
  rows[1].user_codes = &wrong;
  rows[1].state = &bad;
  rows[1].params = &greedy;
  gen.step_batch(rows);
  EXPECT_FALSE(rows[0].error);
  ASSERT_TRUE(rows[1].error);
  EXPECT_THROW(std::rethrow_exception(rows[1].error), InputError);
  EXPECT_EQ(good.offset, 1);
  EXPECT_EQ(bad.offset, 0);
  EXPECT_EQ(bad.transformer.offset, 0);
}

// The scheduler, through the public API.
class Scheduler : public ::testing::Test {
 protected:
  static std::shared_ptr<const Moshi> tiny_moshi() {
    return Moshi::load_shared(locate_moshi(data_path("golden/lm_tiny")));
  }
  static std::vector<int64_t> frame(int s, int who) {
    std::vector<int64_t> f(8);
    for (int k = 0; k < 8; ++k) f[k] = (s * 7 + k * 3 + who * 11) % 64;
    return f;
  }
  // Tokens of `steps` steps of conversation `who`, optionally pausing before some steps.
  static std::vector<int64_t> run(MoshiConversation& c, int who, int steps,
                                  std::vector<MoshiConversation::Step>* all = nullptr) {
    std::vector<int64_t> tokens;
    const SamplingParams params{0.8, 20 + who, 0.7, 5 + who};
    for (int s = 0; s < steps; ++s) {
      if ((s + who) % 9 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2 * who));
      const auto f = frame(s, who);
      const auto step = c.step(f.data(), 8, params);
      tokens.push_back(step.text_token);
      tokens.insert(tokens.end(), step.audio.begin(), step.audio.end());
      if (all) all->push_back(step);
    }
    return tokens;
  }
};

TEST_F(Scheduler, ConversationsInThreadsGetTheirSoloTokens) {
  constexpr int kThreads = 4, kSteps = 40;
  std::vector<std::vector<int64_t>> alone(kThreads), together(kThreads);
  for (int i = 0; i < kThreads; ++i) {
    MoshiConversation c(tiny_moshi(), 50 + i);
    alone[i] = run(c, i, kSteps);
  }
  std::vector<std::vector<MoshiConversation::Step>> steps(kThreads);
  std::vector<StepStats> stats(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i)
    threads.emplace_back([&, i] {
      MoshiConversation c(tiny_moshi(), 50 + i, BatchOptions{true, 20.0});
      together[i] = run(c, i, kSteps, &steps[i]);
      stats[i] = c.stats();
    });
  for (auto& t : threads) t.join();
  int largest = 0;
  for (int i = 0; i < kThreads; ++i) {
    EXPECT_EQ(together[i], alone[i]) << "conversation " << i;
    EXPECT_EQ(stats[i].steps, static_cast<uint64_t>(kSteps));
    EXPECT_GE(stats[i].mean_batch, 1.0);
    for (const auto& s : steps[i]) {
      largest = std::max(largest, s.batch_size);
      EXPECT_LE(s.wait_ms, 20.0 + 1000.0);  // the bound, plus one step of the others at most
    }
  }
  EXPECT_GT(largest, 1) << "no step was batched";
}

TEST_F(Scheduler, AStalledConversationDelaysTheOthersOnlyOnce) {
  constexpr double kWait = 100;
  MoshiConversation a(tiny_moshi(), 1, BatchOptions{true, kWait});
  std::atomic<bool> done{false};
  std::thread stalled([&] {
    MoshiConversation b(tiny_moshi(), 2, BatchOptions{true, kWait});
    run(b, 1, 1);  // takes part once, then stalls (a paused pipeline) while staying a member
    while (!done) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::vector<MoshiConversation::Step> steps;
  run(a, 0, 20, &steps);
  done = true;
  stalled.join();
  int waited = 0;
  for (const auto& s : steps) waited += s.wait_ms >= kWait / 2;
  EXPECT_LE(waited, 1);
  EXPECT_LE(a.stats().max_wait_ms, kWait + 1000.0);
}

TEST_F(Scheduler, ErrorsReachOnlyTheirConversation) {
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  std::vector<std::vector<int64_t>> tokens(3);
  for (int i = 0; i < 3; ++i)
    threads.emplace_back([&, i] {
      MoshiConversation c(tiny_moshi(), 3, BatchOptions{true, 10.0});
      for (int s = 0; s < 10; ++s) {
        std::vector<int64_t> f = frame(s, 0);
        if (i == 1 && s % 3 == 0) f[2] = 999;  // refused
        try {
          const auto step = c.step(f.data(), 8, {});
          tokens[i].push_back(step.text_token);
        } catch (const InputError&) {
          ++errors;
        }
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors, 4);
  EXPECT_EQ(tokens[0], tokens[2]);  // same seed, same input, whatever happened to conversation 1
}

// The wait for the others counts from when a step could start: a conversation that submitted
// while a step ran still waits up to its max_wait after that step, for the conversations the
// step served (batch_scheduler.h says why).
TEST(BatchDeadline, CountsFromTheLaterOfSubmissionAndTheLastStepsEnd) {
  using Clock = BatchScheduler::Clock;
  const Clock::time_point t0{};
  const auto ms = [](int n) { return std::chrono::milliseconds(n); };
  const Clock::duration wait = ms(5);
  EXPECT_EQ(BatchScheduler::due(t0 + ms(10), t0 + ms(2), wait), t0 + ms(15));  // idle before
  EXPECT_EQ(BatchScheduler::due(t0 + ms(10), t0 + ms(90), wait), t0 + ms(95));  // behind a step
}

// The statistics of a conversation: every step in the histogram and the total, the window
// figures in order, the real-time factor against the frame given, all gone on reset.
TEST_F(Scheduler, StepStatsCountEveryStepAndResetWithTheConversation) {
  MoshiConversation c(tiny_moshi(), 4);
  c.set_frame_ms(40);
  run(c, 0, 300);  // past the window: its ring wraps
  const StepStats s = c.stats();
  EXPECT_EQ(s.steps, 300u);
  uint64_t counted = 0;
  for (uint64_t n : s.histogram) counted += n;
  EXPECT_EQ(counted, 300u);
  EXPECT_GT(s.total_ms, 0);
  EXPECT_LE(s.median_ms, s.p90_ms);
  EXPECT_LE(s.p90_ms, s.max_ms);
  EXPECT_LE(s.max_ms, s.total_ms);
  EXPECT_DOUBLE_EQ(s.real_time_factor, s.median_ms / 40);
  EXPECT_EQ(s.last_batch, 1);
  EXPECT_DOUBLE_EQ(s.mean_batch, 1.0);
  EXPECT_EQ(s.mean_wait_ms, 0.0);
  c.reset(5);
  const StepStats fresh = c.stats();
  EXPECT_EQ(fresh.steps, 0u);
  EXPECT_EQ(fresh.total_ms, 0.0);
  EXPECT_EQ(fresh.median_ms, 0.0);
  EXPECT_EQ(fresh.histogram, StepStats().histogram);
}

}  // namespace
}  // namespace kyutai
