// moshilm under GstHarness with the lm_tiny model: greedy parity with the reference trace,
// seeds, timestamps and GAPs, latency, flushes and new conversations, long conversations,
// statistics and every bad input.
#include <gst/gst.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <iterator>
#include <nlohmann/json.hpp>

#include "gst_test_util.h"
#include "kyutai/hub.h"
#include "kyutai/moshi.h"
#include "kyutai/safetensors.h"
#include "kyutai/weights.h"

namespace gstmimi::test {
namespace {

constexpr int kLmCodebooks = 8;  // user codebooks lm_tiny reads, and the ones it writes
constexpr int kLmCard = 64;
constexpr GstClockTime kLmFrame = 80 * GST_MSECOND;
const char* const kCaps =
    "audio/x-mimi,rate=24000,channels=1,frame-size=1920,codebooks=8,cardinality=64";

std::string lm_tiny() {
  return data_path("golden/lm_tiny");
}

// The greedy trace of golden/lm_tiny: user codes [8][40] and the reference's outputs [9][40].
struct Trace {
  std::vector<int64_t> user, out;
  int steps = 0;
  std::vector<int64_t> user_frame(int s) const {
    std::vector<int64_t> f;
    for (int k = 0; k < kLmCodebooks; ++k) f.push_back(user[k * steps + s]);
    return f;
  }
};

const Trace& trace() {
  static const Trace t = [] {
    const auto file = kyutai::SafetensorsFile::open(lm_tiny() + "/trace.safetensors");
    Trace t;
    for (auto [name, dst] : {std::pair{"user_codes", &t.user}, {"out_tokens", &t.out}}) {
      const kyutai::TensorInfo* info = file->find(name);
      const auto* p = reinterpret_cast<const int64_t*>(file->data(*info));
      dst->assign(p, p + (info->end - info->begin) / 8);
      t.steps = static_cast<int>(info->shape[2]);
    }
    return t;
  }();
  return t;
}

class MoshiLm : public ::testing::Test {
 protected:
  explicit MoshiLm(Properties extra = {}) : lm_("moshilm", with_defaults(std::move(extra))) {
    text_ = gst_harness_new_with_element(lm_.element, nullptr, "text_src");
  }
  ~MoshiLm() override { gst_harness_teardown(text_); }

  static Properties with_defaults(Properties p) {
    p.emplace("model", lm_tiny());
    p.emplace("dtype", "float32");
    return p;
  }

  void start(const std::string& caps = kCaps) { gst_harness_set_src_caps_str(lm_.h, caps.c_str()); }

  GstFlowReturn push(const std::vector<int64_t>& codes, GstClockTime pts) {
    return gst_harness_push(lm_.h, codes_buffer(codes, pts));
  }

  // Pushes steps [0, n) of the trace's user codes, timestamped from `start`.
  void push_trace(int n, GstClockTime start = 0) {
    for (int s = 0; s < n; ++s)
      ASSERT_EQ(push(trace().user_frame(s % trace().steps), start + s * kLmFrame), GST_FLOW_OK);
  }

  // Waits until everything queued for text_src (which has its own streaming thread) has reached
  // the text harness: a serialized marker event sent after it has arrived.
  void sync_text() {
    static int marker = 0;
    const int n = ++marker;
    GstStructure* s = gst_structure_new("moshilm-test-sync", "n", G_TYPE_INT, n, nullptr);
    ASSERT_TRUE(
        gst_harness_push_event(lm_.h, gst_event_new_custom(GST_EVENT_CUSTOM_DOWNSTREAM_STICKY, s)));
    for (int waited_ms = 0; waited_ms < 10000; ++waited_ms) {
      GstEvent* e = gst_pad_get_sticky_event(text_->sinkpad, GST_EVENT_CUSTOM_DOWNSTREAM_STICKY, 0);
      int got = 0;
      if (e) gst_structure_get_int(gst_event_get_structure(e), "n", &got);
      if (e) gst_event_unref(e);
      if (got == n) return;
      g_usleep(1000);
    }
    FAIL() << "text_src's queue did not drain";
  }

  // Everything that came out of `h`: buffers and GAP events, in order, as text lines.
  static std::vector<std::string> drain(GstHarness* h, bool as_text) {
    std::vector<std::string> out;
    while (GstEvent* e = gst_harness_try_pull_event(h)) {
      if (GST_EVENT_TYPE(e) == GST_EVENT_GAP) {
        GstClockTime ts, duration;
        gst_event_parse_gap(e, &ts, &duration);
        out.push_back("gap " + std::to_string(ts) + " " + std::to_string(duration));
      }
      gst_event_unref(e);
    }
    for (GstBuffer* b = gst_harness_try_pull(h); b; b = gst_harness_try_pull(h)) {
      GstMapInfo map;
      gst_buffer_map(b, &map, GST_MAP_READ);
      std::string line =
          std::to_string(GST_BUFFER_PTS(b)) + " " + std::to_string(GST_BUFFER_DURATION(b)) + " ";
      if (as_text) {
        line.append(reinterpret_cast<const char*>(map.data), map.size);
      } else {
        for (int64_t c : buffer_codes(b)) line += std::to_string(c) + ",";
      }
      gst_buffer_unmap(b, &map);
      gst_buffer_unref(b);
      out.push_back(line);
    }
    return out;
  }

  Harnessed lm_;
  GstHarness* text_ = nullptr;
};

TEST_F(MoshiLm, GreedyOutputIsTheReferenceTrace) {
  g_object_set(lm_.element, "temperature", 0.0, "text-temperature", 0.0, nullptr);
  start();
  const Trace& t = trace();
  push_trace(t.steps);
  // Step 0 has no output: a GAP, then one frame per step with the reference's tokens.
  GstEvent* event;
  bool gap = false;
  while ((event = gst_harness_try_pull_event(lm_.h))) {
    gap |= GST_EVENT_TYPE(event) == GST_EVENT_GAP;
    gst_event_unref(event);
  }
  EXPECT_TRUE(gap);
  std::vector<GstBuffer*> frames = lm_.pull_all();
  ASSERT_EQ(frames.size(), static_cast<size_t>(t.steps - 1));
  for (int s = 1; s < t.steps; ++s) {
    std::vector<int64_t> expected;
    for (int k = 1; k <= kLmCodebooks; ++k) expected.push_back(t.out[k * t.steps + s]);
    EXPECT_EQ(buffer_codes(frames[s - 1]), expected) << "step " << s;
    EXPECT_EQ(GST_BUFFER_PTS(frames[s - 1]), s * kLmFrame);
  }
  unref_all(frames);

  // The text is the reference's text tokens as the reference tokenizer spells them
  // (tokenizer_check.json), padding (0 and 3) dropped and '▁' turned into a space.
  std::ifstream check_in(lm_tiny() + "/tokenizer_check.json");
  const nlohmann::json pieces = nlohmann::json::parse(check_in)["id_to_piece"];
  std::string expected;
  for (int s = 1; s < t.steps; ++s) {
    const int64_t token = t.out[s];
    if (token == 0 || token == 3) continue;
    std::string piece = pieces[std::to_string(token)].get<std::string>();
    for (size_t at = piece.find("\xe2\x96\x81"); at != std::string::npos;
         at = piece.find("\xe2\x96\x81"))
      piece.replace(at, 3, " ");
    expected += piece;
  }
  std::string text;
  sync_text();
  while (GstBuffer* b = gst_harness_try_pull(text_)) {
    GstMapInfo map;
    gst_buffer_map(b, &map, GST_MAP_READ);
    EXPECT_TRUE(g_utf8_validate(reinterpret_cast<const char*>(map.data), map.size, nullptr));
    text.append(reinterpret_cast<const char*>(map.data), map.size);
    gst_buffer_unmap(b, &map);
    gst_buffer_unref(b);
  }
  EXPECT_FALSE(expected.empty());
  EXPECT_EQ(text, expected);
}

// The element messages moshi-speaking-started and -stopped, as (name, running time).
std::vector<std::pair<std::string, GstClockTime>> speaking_messages(GstBus* bus) {
  std::vector<std::pair<std::string, GstClockTime>> out;
  while (GstMessage* m = gst_bus_pop_filtered(bus, GST_MESSAGE_ELEMENT)) {
    const GstStructure* s = gst_message_get_structure(m);
    guint64 at = GST_CLOCK_TIME_NONE;
    gst_structure_get_uint64(s, "running-time", &at);
    if (g_str_has_prefix(gst_structure_get_name(s), "moshi-speaking-"))
      out.emplace_back(gst_structure_get_name(s), at);
    gst_message_unref(m);
  }
  return out;
}

TEST_F(MoshiLm, SpeakingMessagesFollowTheText) {
  g_object_set(lm_.element, "text-temperature", 0.0, "speaking-hold", 2u, nullptr);
  start();
  push_trace(trace().steps);
  sync_text();
  // The steps with text, from text_src: Moshi speaks from the first, and stops once two steps
  // in a row had none, at the end of the last text.
  std::vector<std::pair<std::string, GstClockTime>> expected;
  GstClockTime silent_from = 0;
  int silent = 0;
  bool speaking = false;
  for (GstBuffer* b = gst_harness_try_pull(text_); b; b = gst_harness_try_pull(text_)) {
    const GstClockTime pts = GST_BUFFER_PTS(b);
    gst_buffer_unref(b);
    if (speaking && (pts - silent_from) / kLmFrame >= 2) expected.emplace_back(
        "moshi-speaking-stopped", silent_from);
    if (!speaking || (pts - silent_from) / kLmFrame >= 2)
      expected.emplace_back("moshi-speaking-started", pts);
    speaking = true;
    silent_from = pts + kLmFrame;
  }
  ASSERT_TRUE(speaking) << "the trace has no text";
  silent = static_cast<int>((trace().steps * kLmFrame - silent_from) / kLmFrame);
  if (silent >= 2) expected.emplace_back("moshi-speaking-stopped", silent_from);
  EXPECT_EQ(speaking_messages(lm_.bus), expected);
  // EOS ends Moshi's turn when it was still speaking.
  gst_harness_push_event(lm_.h, gst_event_new_eos());
  const auto at_eos = speaking_messages(lm_.bus);
  EXPECT_EQ(at_eos.size(), silent >= 2 ? 0u : 1u);
}

TEST_F(MoshiLm, StampsFramesWithTheInputTimeAndFillsTheStartWithGaps) {
  start();
  const GstClockTime t0 = 3 * GST_SECOND;
  push_trace(5, t0);
  const std::vector<std::string> audio = drain(lm_.h, false);
  ASSERT_EQ(audio.size(), 5u);
  EXPECT_EQ(audio[0], "gap " + std::to_string(t0) + " " + std::to_string(kLmFrame));
  for (int s = 1; s < 5; ++s)
    EXPECT_EQ(
        audio[s].rfind(std::to_string(t0 + s * kLmFrame) + " " + std::to_string(kLmFrame) + " ", 0),
        0u)
        << audio[s];
  // Text: a buffer or a GAP for every step, so downstream time never stops.
  sync_text();
  EXPECT_EQ(drain(text_, true).size(), 5u);
}

TEST_F(MoshiLm, CountsFramesWhenBuffersHaveNoTimestamps) {
  start();
  for (int s = 0; s < 4; ++s)
    ASSERT_EQ(push(trace().user_frame(s), GST_CLOCK_TIME_NONE), GST_FLOW_OK);
  std::vector<GstBuffer*> frames = lm_.pull_all();
  ASSERT_EQ(frames.size(), 3u);
  for (size_t i = 0; i < frames.size(); ++i)
    EXPECT_EQ(GST_BUFFER_PTS(frames[i]), (i + 1) * kLmFrame);
  unref_all(frames);
}

TEST_F(MoshiLm, OutputCapsAreMoshisVoice) {
  start();
  push_trace(2);
  g_autoptr(GstCaps) caps = gst_pad_get_current_caps(lm_.h->sinkpad);
  g_autoptr(GstCaps) expected = gst_caps_from_string(kCaps);  // dep_q = 8 codebooks too
  EXPECT_TRUE(gst_caps_is_equal(caps, expected)) << gst_caps_to_string(caps);
  sync_text();
  g_autoptr(GstCaps) text = gst_pad_get_current_caps(text_->sinkpad);
  g_autoptr(GstCaps) utf8 = gst_caps_from_string("text/x-raw,format=utf8");
  EXPECT_TRUE(gst_caps_is_equal(text, utf8));
}

TEST_F(MoshiLm, LatencyAddsOneFrameAndTheBatchWaitToUpstreams) {
  start();
  gst_harness_set_upstream_latency(lm_.h, 40 * GST_MSECOND);
  // batch-wait is 5 ms by default: a batched step may wait that long for the others.
  EXPECT_EQ(gst_harness_query_latency(lm_.h), 40 * GST_MSECOND + kLmFrame + 5 * GST_MSECOND);
}

TEST(MoshiLmAlone, LatencyAddsOneFrameWithoutBatching) {
  Harnessed lm("moshilm", {{"model", lm_tiny()}, {"dtype", "float32"}, {"batch", "false"}});
  gst_harness_set_src_caps_str(lm.h, kCaps);
  gst_harness_set_upstream_latency(lm.h, 40 * GST_MSECOND);
  EXPECT_EQ(gst_harness_query_latency(lm.h), 40 * GST_MSECOND + kLmFrame);
}

TEST_F(MoshiLm, AFlushStartsANewConversation) {
  start();
  push_trace(12);
  const std::vector<std::string> first = drain(lm_.h, false);
  ASSERT_TRUE(gst_harness_push_event(lm_.h, gst_event_new_flush_start()));
  ASSERT_TRUE(gst_harness_push_event(lm_.h, gst_event_new_flush_stop(TRUE)));
  GstSegment segment;
  gst_segment_init(&segment, GST_FORMAT_TIME);
  ASSERT_TRUE(gst_harness_push_event(lm_.h, gst_event_new_segment(&segment)));
  push_trace(12);
  EXPECT_EQ(drain(lm_.h, false), first);  // same seed, same input: same conversation
}

TEST_F(MoshiLm, ANewStreamStartsANewConversation) {
  start();
  push_trace(6);
  const std::vector<std::string> first = drain(lm_.h, false);
  ASSERT_TRUE(gst_harness_push_event(lm_.h, gst_event_new_stream_start("second")));
  push_trace(6);
  EXPECT_EQ(drain(lm_.h, false), first);
}

TEST_F(MoshiLm, ConversationsLongerThanTheContextGoOn) {
  start();  // lm_tiny attends to 16 steps
  push_trace(100);
  std::vector<GstBuffer*> frames = lm_.pull_all();
  EXPECT_EQ(frames.size(), 99u);
  unref_all(frames);
  EXPECT_FALSE(pop_error(lm_.bus).found);
}

TEST_F(MoshiLm, StatsCountStepsAndTimeThem) {
  start();
  push_trace(10);
  GstStructure* stats = nullptr;
  g_object_get(lm_.element, "stats", &stats, nullptr);
  ASSERT_NE(stats, nullptr);
  guint64 steps = 0;
  double median = 0, max = 0, rtf = 0;
  gst_structure_get_uint64(stats, "steps", &steps);
  gst_structure_get_double(stats, "median-step-ms", &median);
  gst_structure_get_double(stats, "max-step-ms", &max);
  gst_structure_get_double(stats, "real-time-factor", &rtf);
  int batch = 0;
  double mean_batch = 0, mean_wait = -1;
  gst_structure_get_int(stats, "batch-size", &batch);
  gst_structure_get_double(stats, "mean-batch-size", &mean_batch);
  gst_structure_get_double(stats, "mean-batch-wait-ms", &mean_wait);
  EXPECT_EQ(batch, 1);  // alone in the process
  EXPECT_DOUBLE_EQ(mean_batch, 1.0);
  EXPECT_GE(mean_wait, 0.0);
  EXPECT_EQ(steps, 10u);
  EXPECT_GT(median, 0);
  EXPECT_GE(max, median);
  EXPECT_NEAR(rtf, median / 80.0, 1e-9);
  // The histogram: every step in one bucket, one more bucket than bounds, which rise.
  const GValue* bounds = gst_structure_get_value(stats, "histogram-bounds-ms");
  const GValue* counts = gst_structure_get_value(stats, "histogram");
  ASSERT_TRUE(bounds && GST_VALUE_HOLDS_ARRAY(bounds));
  ASSERT_TRUE(counts && GST_VALUE_HOLDS_ARRAY(counts));
  ASSERT_GT(gst_value_array_get_size(bounds), 1u);
  ASSERT_EQ(gst_value_array_get_size(counts), gst_value_array_get_size(bounds) + 1);
  guint64 counted = 0;
  for (guint i = 0; i < gst_value_array_get_size(counts); ++i)
    counted += g_value_get_uint64(gst_value_array_get_value(counts, i));
  EXPECT_EQ(counted, steps);
  for (guint i = 1; i < gst_value_array_get_size(bounds); ++i)
    EXPECT_LT(g_value_get_double(gst_value_array_get_value(bounds, i - 1)),
              g_value_get_double(gst_value_array_get_value(bounds, i)));
  double total = 0, p90 = 0;
  gst_structure_get_double(stats, "total-step-ms", &total);
  gst_structure_get_double(stats, "p90-step-ms", &p90);
  EXPECT_GE(p90, median);
  EXPECT_GE(total, max);
  gst_structure_free(stats);
}

// The statistics outlive the conversation: read after stopping, they are its last ones.
TEST_F(MoshiLm, StatsStayReadableAfterStop) {
  start();
  push_trace(5);
  gst_element_set_state(lm_.element, GST_STATE_READY);
  GstStructure* stats = nullptr;
  g_object_get(lm_.element, "stats", &stats, nullptr);
  ASSERT_NE(stats, nullptr);
  guint64 steps = 0;
  gst_structure_get_uint64(stats, "steps", &steps);
  EXPECT_EQ(steps, 5u);
  gst_structure_free(stats);
}

TEST_F(MoshiLm, WarnsWhenAStepIsLongerThanAFrame) {
  // A 1-sample frame lasts 42 us: no step is that fast.
  start("audio/x-mimi,rate=24000,channels=1,frame-size=1,codebooks=8,cardinality=64");
  push_trace(3);
  GstMessage* warning = gst_bus_pop_filtered(lm_.bus, GST_MESSAGE_WARNING);
  ASSERT_NE(warning, nullptr);
  GError* error = nullptr;
  gst_message_parse_warning(warning, &error, nullptr);
  EXPECT_NE(std::string(error->message).find("slower than real time"), std::string::npos)
      << error->message;
  g_error_free(error);
  gst_message_unref(warning);
  // Timestamps stay those of the input.
  std::vector<GstBuffer*> frames = lm_.pull_all();
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(GST_BUFFER_PTS(frames[1]), 2 * kLmFrame);
  unref_all(frames);
}

// The weight format: an enum property, with dtype as its string alias.
TEST(MoshiLmWeights, WeightsIsAnEnumAndDtypeItsAlias) {
  GstElement* lm = GST_ELEMENT(gst_object_ref_sink(make_element("moshilm", {{"weights", "int4"}})));
  gchar* dtype = nullptr;
  g_object_get(lm, "dtype", &dtype, nullptr);
  EXPECT_STREQ(dtype, "int4");
  g_free(dtype);
  g_object_set(lm, "dtype", "int8", nullptr);
  GParamSpec* spec = g_object_class_find_property(G_OBJECT_GET_CLASS(lm), "weights");
  ASSERT_TRUE(spec && G_IS_PARAM_SPEC_ENUM(spec));
  GEnumClass* values = G_PARAM_SPEC_ENUM(spec)->enum_class;
  gint weights = -1;
  g_object_get(lm, "weights", &weights, nullptr);
  EXPECT_STREQ(g_enum_get_value(values, weights)->value_nick, "int8");
  g_object_set(lm, "dtype", "fp32", nullptr);  // the library's alias of float32
  g_object_get(lm, "weights", &weights, nullptr);
  EXPECT_STREQ(g_enum_get_value(values, weights)->value_nick, "float32");
  EXPECT_STREQ(g_enum_get_value(values, G_PARAM_SPEC_ENUM(spec)->default_value)->value_nick,
               "auto");
  // One value per row of the library's table, numbered as its enum.
  std::vector<std::string> nicks;
  for (guint i = 0; i < values->n_values; ++i) {
    nicks.push_back(values->values[i].value_nick);
    EXPECT_EQ(values->values[i].value, static_cast<gint>(kyutai::kWeightFormats[i].format));
  }
  EXPECT_EQ(nicks, (std::vector<std::string>{"float32", "bfloat16", "int8", "int4", "auto"}));
  gst_object_unref(lm);
}

std::string weights_nick(GstElement* element) {
  gint value = -1;
  g_object_get(element, "weights", &value, nullptr);
  return kyutai::weight_format_name(static_cast<kyutai::WeightFormat>(value));
}

// weights=auto, the default, reads back as auto until the model is loaded, then as the format
// it chose for the device (int8 on the CPU), and as auto again once the model is released.
TEST(MoshiLmWeights, AutoReadsBackTheFormatItChose) {
  GstElement* lm =
      GST_ELEMENT(gst_object_ref_sink(make_element("moshilm", {{"model", lm_tiny()}})));
  EXPECT_EQ(weights_nick(lm), "auto");
  ASSERT_NE(gst_element_set_state(lm, GST_STATE_PAUSED), GST_STATE_CHANGE_FAILURE);
  EXPECT_EQ(weights_nick(lm), "int8");
  gchar* dtype = nullptr;
  g_object_get(lm, "dtype", &dtype, nullptr);
  EXPECT_STREQ(dtype, "int8");
  g_free(dtype);
  gst_element_set_state(lm, GST_STATE_NULL);
  EXPECT_EQ(weights_nick(lm), "auto");
  gst_object_unref(lm);
}

// int8 and int4 quantize at load and keep the result in the cache ($KYUTAI_CACHE_DIR here); a
// damaged cache file is a warning on the bus, and the element goes on with a rebuilt one.
TEST(MoshiLmWeights, QuantizedWeightsRunThroughTheirCache) {
  TempDir dir;
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.model"})
    std::filesystem::copy_file(lm_tiny() + "/" + f, dir.path(f));
  TempDir cache;
  const std::string shared_cache = g_getenv("KYUTAI_CACHE_DIR") ? g_getenv("KYUTAI_CACHE_DIR") : "";
  g_setenv("KYUTAI_CACHE_DIR", cache.str().c_str(), TRUE);
  auto run = [&](const char* weights) {
    Harnessed lm("moshilm", {{"model", dir.str()}, {"weights", weights}});
    gst_harness_set_src_caps_str(lm.h, kCaps);
    for (int s = 0; s < 3; ++s)
      EXPECT_EQ(gst_harness_push(lm.h, codes_buffer(trace().user_frame(s), s * kLmFrame)),
                GST_FLOW_OK);
    std::vector<GstBuffer*> frames = lm.pull_all();
    EXPECT_EQ(frames.size(), 2u) << weights;
    unref_all(frames);
    // Only the cache's warning counts: a slow machine (a sanitizer build) may also warn that
    // the steps are late.
    bool warned = false;
    while (GstMessage* warning = gst_bus_pop_filtered(lm.bus, GST_MESSAGE_WARNING)) {
      GError* error = nullptr;
      gst_message_parse_warning(warning, &error, nullptr);
      if (std::string(error->message).find("quantized-weights cache") != std::string::npos)
        warned = true;
      g_error_free(error);
      gst_message_unref(warning);
    }
    return warned;
  };
  EXPECT_FALSE(run("int8"));
  EXPECT_FALSE(run("int4"));
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(cache.str())) {
    ++files;
    std::filesystem::resize_file(e.path(), 100);  // damaged
  }
  EXPECT_EQ(files, 2);
  EXPECT_TRUE(run("int8"));
  EXPECT_FALSE(run("int8"));  // rebuilt whole
  if (shared_cache.empty())
    g_unsetenv("KYUTAI_CACHE_DIR");
  else
    g_setenv("KYUTAI_CACHE_DIR", shared_cache.c_str(), TRUE);
}

// Same seed: same conversation; another seed: another one.
class MoshiLmSeeds : public ::testing::Test {
 protected:
  static std::vector<std::string> run(const std::string& seed, Properties extra = {}) {
    Properties properties = {{"model", lm_tiny()}, {"dtype", "float32"}, {"seed", seed}};
    properties.insert(extra.begin(), extra.end());
    Harnessed lm("moshilm", properties);
    gst_harness_set_src_caps_str(lm.h, kCaps);
    for (int s = 0; s < 12; ++s)
      gst_harness_push(lm.h, codes_buffer(trace().user_frame(s), s * kLmFrame));
    std::vector<std::string> out;
    std::vector<GstBuffer*> frames = lm.pull_all();
    for (GstBuffer* b : frames) {
      std::string line;
      for (int64_t c : buffer_codes(b)) line += std::to_string(c) + ",";
      out.push_back(line);
    }
    unref_all(frames);
    return out;
  }
};

TEST_F(MoshiLmSeeds, SameSeedSameOutputOtherSeedOtherOutput) {
  const auto a = run("7");
  EXPECT_EQ(a.size(), 11u);
  EXPECT_EQ(run("7"), a);
  EXPECT_NE(run("8"), a);
}

// The repetition penalty is off by default (the library's unit tests show its arithmetic); set,
// it changes the conversation.
TEST_F(MoshiLmSeeds, TheRepetitionPenaltyIsOffByDefault) {
  Harnessed lm("moshilm", {{"model", lm_tiny()}});
  gdouble penalty = 0;
  guint context = 0;
  g_object_get(lm.element, "repetition-penalty", &penalty, "repetition-penalty-context", &context,
               nullptr);
  EXPECT_EQ(penalty, 1.0);
  EXPECT_EQ(context, 32u);
  const auto plain = run("7");
  EXPECT_EQ(run("7", {{"repetition-penalty", "1"}, {"repetition-penalty-context", "100"}}), plain);
  EXPECT_NE(run("7", {{"repetition-penalty", "3"}, {"repetition-penalty-context", "4"}}), plain);
}

// The int8 KV cache is off by default; on, the element's conversation is the library's with an
// int8 cache, step for step (the cache's logit error is bounded in the library's tests).
TEST_F(MoshiLmSeeds, TheInt8KvCacheIsAChoice) {
  Harnessed lm("moshilm", {{"model", lm_tiny()}});
  gboolean int8 = TRUE;
  g_object_get(lm.element, "kv-int8", &int8, nullptr);
  EXPECT_FALSE(int8);
  const auto moshi = kyutai::Moshi::load(kyutai::locate_moshi(lm_tiny()), "cpu",
                                         kyutai::WeightFormat::Float32);
  kyutai::MoshiConversation alone(moshi, 7, {}, kyutai::KvCacheFormat::Int8);
  std::vector<std::string> expected;
  for (int s = 0; s < 12; ++s) {
    const std::vector<int64_t> codes = trace().user_frame(s);
    const auto step = alone.step(codes.data(), static_cast<int>(codes.size()), {});
    if (!step.ready) continue;
    std::string line;
    for (int64_t c : step.audio) line += std::to_string(c) + ",";
    expected.push_back(line);
  }
  EXPECT_EQ(run("7", {{"kv-int8", "true"}}), expected);
}

// Two elements with the same seed take greedy steps (the reference trace), then one of them
// switches to hot sampling while playing: their outputs part from that step on.
TEST_F(MoshiLmSeeds, SamplingCanChangeWhilePlaying) {
  const char* const greedy[] = {"temperature", "text-temperature"};
  Harnessed a("moshilm", {{"model", lm_tiny()}, {"dtype", "float32"}});
  Harnessed b("moshilm", {{"model", lm_tiny()}, {"dtype", "float32"}});
  for (Harnessed* e : {&a, &b}) {
    for (const char* name : greedy) g_object_set(e->element, name, 0.0, nullptr);
    gst_harness_set_src_caps_str(e->h, kCaps);
  }
  auto step = [](Harnessed& e, int s) {
    gst_harness_push(e.h, codes_buffer(trace().user_frame(s), s * kLmFrame));
    std::vector<GstBuffer*> out = e.pull_all();
    std::vector<int64_t> codes = out.empty() ? std::vector<int64_t>() : buffer_codes(out[0]);
    unref_all(out);
    return codes;
  };
  const Trace& t = trace();
  for (int s = 0; s < 10; ++s) {
    const std::vector<int64_t> first = step(a, s);
    EXPECT_EQ(step(b, s), first) << "step " << s;
    if (s > 0) {
      EXPECT_EQ(first[0], t.out[1 * t.steps + s]) << "greedy step " << s;
    }
  }
  g_object_set(b.element, "temperature", 5.0, "top-k", 0, "text-temperature", 5.0, "text-top-k", 0,
               nullptr);
  int differing = 0;
  for (int s = 10; s < 30; ++s) differing += step(a, s) != step(b, s);
  EXPECT_GT(differing, 10);
}

TEST_F(MoshiLm, TheTextStreamIsNamedAfterTheInputStream) {
  ASSERT_TRUE(gst_harness_push_event(lm_.h, gst_event_new_stream_start("voice-42")));
  start();
  push_trace(2);
  sync_text();
  GstEvent* start_event = gst_pad_get_sticky_event(text_->sinkpad, GST_EVENT_STREAM_START, 0);
  ASSERT_NE(start_event, nullptr);
  const gchar* id = nullptr;
  gst_event_parse_stream_start(start_event, &id);
  EXPECT_STREQ(id, "voice-42/text");
  gst_event_unref(start_event);
}

TEST_F(MoshiLm, TagsDescribeTheVoiceOnly) {
  start();
  GstTagList* tags = gst_tag_list_new(GST_TAG_AUDIO_CODEC, "Mimi", nullptr);
  gst_tag_list_set_scope(tags, GST_TAG_SCOPE_STREAM);
  ASSERT_TRUE(gst_harness_push_event(lm_.h, gst_event_new_tag(tags)));
  push_trace(2);
  sync_text();
  GstEvent* voice_tags = gst_pad_get_sticky_event(lm_.h->sinkpad, GST_EVENT_TAG, 0);
  GstEvent* text_tags = gst_pad_get_sticky_event(text_->sinkpad, GST_EVENT_TAG, 0);
  EXPECT_NE(voice_tags, nullptr);
  EXPECT_EQ(text_tags, nullptr);
  if (voice_tags) gst_event_unref(voice_tags);
  if (text_tags) gst_event_unref(text_tags);
}

// ---------------------------------------------------------------------------------------------
// Bad input

TEST_F(MoshiLm, TooFewCodebooksAreRefused) {
  EXPECT_FALSE(lm_.send_caps(
      "audio/x-mimi,rate=24000,channels=1,frame-size=1920,codebooks=4,cardinality=64"));
  EXPECT_TRUE(is_error(pop_error(lm_.bus), GST_STREAM_ERROR, GST_STREAM_ERROR_FORMAT, "needs 8"));
}

TEST_F(MoshiLm, AnotherCardinalityIsRefused) {
  EXPECT_FALSE(lm_.send_caps(
      "audio/x-mimi,rate=24000,channels=1,frame-size=1920,codebooks=8,cardinality=2048"));
  EXPECT_TRUE(
      is_error(pop_error(lm_.bus), GST_STREAM_ERROR, GST_STREAM_ERROR_FORMAT, "cardinality"));
}

TEST_F(MoshiLm, AByteStreamIsRefused) {
  EXPECT_FALSE(lm_.send_caps(std::string(kCaps) + ",framed=false"));
  EXPECT_TRUE(is_error(pop_error(lm_.bus), GST_STREAM_ERROR, GST_STREAM_ERROR_FORMAT, "framed"));
}

TEST_F(MoshiLm, MoreCodebooksThanNeededAreFine) {
  start("audio/x-mimi,rate=24000,channels=1,frame-size=1920,codebooks=32,cardinality=64");
  std::vector<int64_t> codes(32, 1);
  EXPECT_EQ(push(codes, 0), GST_FLOW_OK);
  EXPECT_FALSE(pop_error(lm_.bus).found);
}

TEST_F(MoshiLm, CodesAtOrAboveTheCardinalityAreADecodeError) {
  start();
  std::vector<int64_t> codes(kLmCodebooks, 1);
  codes[3] = kLmCard;
  EXPECT_EQ(push(codes, 0), GST_FLOW_ERROR);
  EXPECT_TRUE(is_error(pop_error(lm_.bus), GST_STREAM_ERROR, GST_STREAM_ERROR_DECODE, "Moshi"));
}

// Errors are posted by a helper in gst/common but located at the element's call.
TEST_F(MoshiLm, AnErrorNamesTheElementsSourceLine) {
  start();
  std::vector<int64_t> codes(kLmCodebooks, kLmCard);
  EXPECT_EQ(push(codes, 0), GST_FLOW_ERROR);
  const ErrorMessage e = pop_error(lm_.bus);
  EXPECT_NE(e.debug.find("gstmoshilm.cpp("), std::string::npos) << e.debug;
  EXPECT_NE(e.debug.find("gst_moshi_lm_chain"), std::string::npos) << e.debug;
  EXPECT_EQ(e.debug.find("gstkyutai.h"), std::string::npos) << e.debug;
}

TEST_F(MoshiLm, ABufferOfTheWrongSizeIsADecodeError) {
  start();
  EXPECT_EQ(push(std::vector<int64_t>(5, 1), 0), GST_FLOW_ERROR);
  EXPECT_TRUE(is_error(pop_error(lm_.bus), GST_STREAM_ERROR, GST_STREAM_ERROR_DECODE, "16 bytes"));
}

// The model is loaded in READY->PAUSED; a bad one fails that state change with a clear error.
class MoshiLmModel : public ::testing::Test {
 protected:
  static ErrorMessage start_with(const Properties& properties) {
    GstElement* element = GST_ELEMENT(gst_object_ref_sink(make_element("moshilm", properties)));
    GstBus* bus = gst_bus_new();
    gst_element_set_bus(element, bus);
    EXPECT_EQ(gst_element_set_state(element, GST_STATE_PAUSED), GST_STATE_CHANGE_FAILURE);
    const ErrorMessage e = pop_error(bus);
    gst_element_set_state(element, GST_STATE_NULL);
    gst_element_set_bus(element, nullptr);
    gst_object_unref(bus);
    gst_object_unref(element);
    return e;
  }
};

TEST_F(MoshiLmModel, MissingModel) {
  EXPECT_TRUE(is_error(start_with({{"model", "/no/such/dir"}}), GST_RESOURCE_ERROR,
                       GST_RESOURCE_ERROR_NOT_FOUND, "/no/such/dir"));
  EXPECT_TRUE(is_error(start_with({{"model", "kyutai/not-in-the-cache"}}), GST_RESOURCE_ERROR,
                       GST_RESOURCE_ERROR_NOT_FOUND, "kyutai/not-in-the-cache"));
}

TEST_F(MoshiLmModel, MissingTokenizer) {
  TempDir dir;
  std::filesystem::copy_file(lm_tiny() + "/config.json", dir.path("config.json"));
  std::filesystem::copy_file(lm_tiny() + "/model.safetensors", dir.path("model.safetensors"));
  const ErrorMessage e = start_with({{"model", dir.str()}});
  EXPECT_TRUE(is_error(e, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND));
  EXPECT_NE(e.debug.find("tokenizer.model"), std::string::npos) << e.debug;
}

TEST_F(MoshiLmModel, TokenizerOfAnotherSize) {
  TempDir dir;
  std::ifstream in(lm_tiny() + "/config.json");
  std::string config((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  config.replace(config.find("\"text_card\": 96"), 15, "\"text_card\": 97");
  std::ofstream(dir.path("config.json")) << config;
  std::filesystem::copy_file(lm_tiny() + "/model.safetensors", dir.path("model.safetensors"));
  std::filesystem::copy_file(lm_tiny() + "/tokenizer.model", dir.path("tokenizer.model"));
  const ErrorMessage e = start_with({{"model", dir.str()}});
  EXPECT_TRUE(is_error(e, GST_LIBRARY_ERROR, GST_LIBRARY_ERROR_INIT));
  EXPECT_NE(e.debug.find("96 pieces but the model's text_card is 97"), std::string::npos)
      << e.debug;
}

TEST_F(MoshiLmModel, InvalidCheckpoint) {
  TempDir dir;
  std::filesystem::copy_file(lm_tiny() + "/config.json", dir.path("config.json"));
  std::filesystem::copy_file(lm_tiny() + "/tokenizer.model", dir.path("tokenizer.model"));
  std::ofstream(dir.path("model.safetensors")) << std::string(100, 'x');
  const ErrorMessage e = start_with({{"model", dir.str()}});
  EXPECT_TRUE(is_error(e, GST_LIBRARY_ERROR, GST_LIBRARY_ERROR_INIT));
  EXPECT_NE(e.debug.find("model.safetensors"), std::string::npos) << e.debug;
}

TEST_F(MoshiLmModel, AConfigurationThatCannotStream) {
  // Without a context the KV cache cannot be sized: an error, not an abort.
  TempDir dir;
  std::ifstream in(lm_tiny() + "/config.json");
  std::string config((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  config.replace(config.find("\"context\": 16,"), 15, "");
  std::ofstream(dir.path("config.json")) << config;
  std::filesystem::copy_file(lm_tiny() + "/model.safetensors", dir.path("model.safetensors"));
  std::filesystem::copy_file(lm_tiny() + "/tokenizer.model", dir.path("tokenizer.model"));
  const ErrorMessage e = start_with({{"model", dir.str()}});
  EXPECT_TRUE(is_error(e, GST_LIBRARY_ERROR, GST_LIBRARY_ERROR_INIT));
  EXPECT_NE(e.debug.find("context is missing"), std::string::npos) << e.debug;
}

TEST_F(MoshiLmModel, BadSettings) {
  EXPECT_TRUE(is_error(start_with({{"model", lm_tiny()}, {"dtype", "float16"}}), GST_RESOURCE_ERROR,
                       GST_RESOURCE_ERROR_SETTINGS, "dtype"));
  EXPECT_TRUE(is_error(start_with({{"model", lm_tiny()}, {"device", "tpu"}}), GST_RESOURCE_ERROR,
                       GST_RESOURCE_ERROR_SETTINGS, "tpu"));
}

}  // namespace
}  // namespace gstmimi::test
