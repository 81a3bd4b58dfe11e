// Several moshilm elements in one process step together (batch=true): fed from four threads at
// different times, each element's output is its output alone (batch=false); an element whose
// input stops (a paused pipeline), ends early (EOS) or goes away never blocks the others.
#include <gst/gst.h>

#include <chrono>
#include <future>
#include <memory>
#include <thread>

#include "gst_test_util.h"

namespace gstmimi::test {
namespace {

constexpr int kElements = 4;
constexpr int kSteps = 30;
constexpr GstClockTime kLmFrame = 80 * GST_MSECOND;
const char* const kCaps =
    "audio/x-mimi,rate=24000,channels=1,frame-size=1920,codebooks=8,cardinality=64";

std::vector<int64_t> frame(int s, int who) {
  std::vector<int64_t> f(8);
  for (int k = 0; k < 8; ++k) f[k] = (s * 5 + k * 7 + who * 13) % 64;
  return f;
}

std::unique_ptr<Harnessed> make_lm(int who, bool batch, double wait_ms) {
  auto lm = std::make_unique<Harnessed>(
      "moshilm", Properties{{"model", data_path("golden/lm_tiny")},
                            {"dtype", "float32"},
                            {"seed", std::to_string(100 + who)},
                            {"top-k", std::to_string(10 + who)},
                            {"batch", batch ? "true" : "false"},
                            {"batch-wait", std::to_string(wait_ms)}});
  gst_harness_set_src_caps_str(lm->h, kCaps);
  return lm;
}

// Pushes steps [0, n) of element `who`'s input, pausing now and then for a while that depends
// on `who`, so the threads submit at different times.
void feed(Harnessed& lm, int who, int n) {
  for (int s = 0; s < n; ++s) {
    if ((s + who) % 4 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1 + 3 * who));
    ASSERT_EQ(gst_harness_push(lm.h, codes_buffer(frame(s, who), s * kLmFrame)), GST_FLOW_OK);
  }
}

std::vector<std::string> output(Harnessed& lm) {
  std::vector<GstBuffer*> frames = lm.pull_all();
  std::vector<std::string> out;
  for (GstBuffer* b : frames) {
    std::string line = std::to_string(GST_BUFFER_PTS(b)) + ":";
    for (int64_t c : buffer_codes(b)) line += std::to_string(c) + ",";
    out.push_back(line);
  }
  unref_all(frames);
  return out;
}

double stat(Harnessed& lm, const char* field) {
  GstStructure* stats = nullptr;
  g_object_get(lm.element, "stats", &stats, nullptr);
  double value = 0;
  if (!gst_structure_get_double(stats, field, &value)) {
    int i = 0;
    gst_structure_get_int(stats, field, &i);
    value = i;
  }
  gst_structure_free(stats);
  return value;
}

// Runs `body` in a thread and fails (rather than hanging) if it has not ended in time.
void within(std::chrono::seconds limit, std::function<void()> body) {
  auto done = std::async(std::launch::async, std::move(body));
  ASSERT_EQ(done.wait_for(limit), std::future_status::ready) << "deadlock: no end in " << limit.count() << " s";
  done.get();
}

TEST(MoshiLmBatching, FourElementsInFourThreadsGiveTheirOutputAlone) {
  std::vector<std::vector<std::string>> alone(kElements), together(kElements);
  for (int i = 0; i < kElements; ++i) {
    auto lm = make_lm(i, false, 0);
    feed(*lm, i, kSteps);
    alone[i] = output(*lm);
    ASSERT_EQ(alone[i].size(), static_cast<size_t>(kSteps - 1));  // lm_tiny: one silent step
  }
  std::vector<std::unique_ptr<Harnessed>> lms;
  for (int i = 0; i < kElements; ++i) lms.push_back(make_lm(i, true, 20));
  within(std::chrono::seconds(120), [&] {
    std::vector<std::thread> threads;
    for (int i = 0; i < kElements; ++i)
      threads.emplace_back([&, i] {
        std::this_thread::sleep_for(std::chrono::milliseconds(7 * i));  // different starts
        feed(*lms[i], i, kSteps);
      });
    for (auto& t : threads) t.join();
  });
  double most = 0;
  for (int i = 0; i < kElements; ++i) {
    EXPECT_EQ(output(*lms[i]), alone[i]) << "element " << i;
    most = std::max(most, stat(*lms[i], "mean-batch-size"));
    EXPECT_LE(stat(*lms[i], "mean-batch-wait-ms"), 20.0 + 1000.0);
  }
  EXPECT_GT(most, 1.0) << "no step was batched";
}

TEST(MoshiLmBatching, StoppedOrFinishedElementsNeverBlockTheOthers) {
  constexpr double kWait = 100;
  std::vector<std::unique_ptr<Harnessed>> lms;
  for (int i = 0; i < kElements; ++i) lms.push_back(make_lm(i, true, kWait));
  within(std::chrono::seconds(120), [&] {
    std::promise<void> release;
    std::shared_future<void> released = release.get_future().share();
    std::vector<std::thread> threads;
    // 0 ends early with EOS, then stops; 1 stops sending (its pipeline paused) but stays.
    threads.emplace_back([&] {
      feed(*lms[0], 0, 5);
      gst_harness_push_event(lms[0]->h, gst_event_new_eos());
      gst_element_set_state(lms[0]->element, GST_STATE_NULL);  // leaves the batch
    });
    threads.emplace_back([&] {
      feed(*lms[1], 1, 5);
      released.wait();
      feed(*lms[1], 1, 3);  // and comes back
    });
    for (int i = 2; i < kElements; ++i)
      threads.emplace_back([&, i] { feed(*lms[i], i, kSteps); });
    for (size_t t = 2; t < threads.size(); ++t) threads[t].join();
    release.set_value();
    threads[0].join();
    threads[1].join();
  });
  for (int i = 2; i < kElements; ++i) {
    // Each missing element delays the others once, by at most the wait: a mean of a few ms.
    EXPECT_LT(stat(*lms[i], "mean-batch-wait-ms"), 3 * kWait / kSteps + 10) << "element " << i;
    EXPECT_EQ(output(*lms[i]).size(), static_cast<size_t>(kSteps - 1));
  }
  EXPECT_EQ(output(*lms[1]).size(), 7u);
}

}  // namespace
}  // namespace gstmimi::test
