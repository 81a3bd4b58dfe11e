// kyutaisttcore and kyutaistt under GstHarness and in pipelines, with models/stt-tiny (random
// weights, Mimi at 12.5 frames a second): the words
// are the library's on the same Mimi codes (texts, timestamps, durations), GAPs fill the time
// between them, the latency query, the end of turn, the drain at EOS, GAPs and holes in the
// input, flushes, live and non-live sources, and bad models and caps.
#include <gst/gst.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gst_test_util.h"
#include "kyutai/hub.h"
#include "kyutai/mimi.h"
#include "kyutai/stt.h"

namespace gstmimi::test {
namespace {

constexpr int kSttRate = 24000;
constexpr int kSttFrame = 1920;  // 80 ms
constexpr GstClockTime kSttFrameTime = 80 * GST_MSECOND;
const char* const kSttCaps = "audio/x-raw,format=F32LE,layout=interleaved,rate=24000,channels=1";

// A Kyutai STT repository: tests/data/stt_tiny's configuration with random weights, and a tiny
// random Mimi at the real frame rate with 32 codebooks (models/stt-tiny/README.md).
std::string repo() {
  return source_root() + "/models/stt-tiny";
}

// Speech-like test audio: tone bursts of changing pitch, 0.6 s on and 0.4 s off.
std::vector<float> test_audio(double seconds, double phase = 0) {
  std::vector<float> audio(static_cast<size_t>(seconds * kSttRate));
  for (size_t i = 0; i < audio.size(); ++i) {
    const double t = static_cast<double>(i) / kSttRate + phase;
    const bool on = std::fmod(t, 1.0) < 0.6;
    const double f = 180 + 120 * std::sin(2 * M_PI * 0.7 * t);
    audio[i] = on ? static_cast<float>(0.3 * std::sin(2 * M_PI * f * t)) : 0.0f;
  }
  return audio;
}

struct Word {
  std::string text;
  GstClockTime pts, duration;
  bool operator==(const Word& o) const {
    return text == o.text && pts == o.pts && duration == o.duration;
  }
};
std::ostream& operator<<(std::ostream& os, const Word& w) {
  return os << "'" << w.text << "' " << w.pts << " +" << w.duration;
}

GstClockTime at(GstClockTime origin, double seconds) {
  return origin + static_cast<GstClockTime>(std::max(0.0, std::round(seconds * GST_SECOND)));
}

// The library on the same codes: the silence prefix, the audio padded to whole frames, the
// delay's silence, finish(); words placed on the time line from `origin`.
std::vector<Word> reference(const std::vector<float>& audio, GstClockTime origin,
                            kyutai::KvCacheFormat kv = kyutai::KvCacheFormat::Model) {
  kyutai::MoshiFiles files = kyutai::locate_moshi(repo());
  auto mimi = kyutai::Mimi::load(files.mimi.weights, files.mimi.config);
  auto stt = kyutai::Stt::load(files, "cpu", kyutai::WeightFormat::Float32);
  const kyutai::SttFormat& f = stt->format();
  kyutai::MimiEncoder encoder(mimi, f.codebooks);
  kyutai::SttStream stream(stt, {}, kv);
  std::vector<float> padded(f.silence_prefix_frames * kSttFrame, 0.0f);
  padded.insert(padded.end(), audio.begin(), audio.end());
  padded.resize((padded.size() + kSttFrame - 1) / kSttFrame * kSttFrame + f.delay_frames * kSttFrame,
                0.0f);
  std::vector<kyutai::SttWord> words;
  std::vector<int64_t> codes(f.codebooks);
  for (size_t i = 0; i < padded.size(); i += kSttFrame) {
    encoder.encode_frame(padded.data() + i, kSttFrame, codes.data());
    for (auto& w : stream.step(codes.data(), f.codebooks).words) words.push_back(w);
  }
  for (auto& w : stream.finish()) words.push_back(w);
  std::vector<Word> out;
  for (const auto& w : words) {
    const GstClockTime start = at(origin, w.start_s);
    out.push_back({w.text, start, std::max(start, at(origin, w.end_s)) - start});
  }
  return out;
}

const kyutai::SttFormat& stt_format() {
  static const auto stt = kyutai::Stt::load(kyutai::locate_moshi(repo()), "cpu",
                                            kyutai::WeightFormat::Float32);
  return stt->format();
}

// What came out of a harness: words, and the time line of words and GAPs as (start, end).
struct Output {
  std::vector<Word> words;
  std::vector<std::pair<GstClockTime, GstClockTime>> timeline;
  std::vector<const GstStructure*> turns;  // the custom events' structures
  bool eos = false;
  std::vector<GstEvent*> events;
  ~Output() {
    for (GstEvent* e : events) gst_event_unref(e);
  }
};

void pull_output(GstHarness* h, Output* out) {
  while (GstEvent* e = gst_harness_try_pull_event(h)) {
    out->events.push_back(e);
    GstClockTime ts, duration;
    if (GST_EVENT_TYPE(e) == GST_EVENT_GAP) {
      gst_event_parse_gap(e, &ts, &duration);
      out->timeline.emplace_back(ts, ts + duration);
    } else if (GST_EVENT_TYPE(e) == GST_EVENT_EOS) {
      out->eos = true;
    } else if (GST_EVENT_TYPE(e) == GST_EVENT_CUSTOM_DOWNSTREAM) {
      out->turns.push_back(gst_event_get_structure(e));
    }
  }
  for (GstBuffer* b = gst_harness_try_pull(h); b; b = gst_harness_try_pull(h)) {
    GstMapInfo map;
    gst_buffer_map(b, &map, GST_MAP_READ);
    out->words.push_back({std::string(reinterpret_cast<const char*>(map.data), map.size),
                          GST_BUFFER_PTS(b), GST_BUFFER_DURATION(b)});
    gst_buffer_unmap(b, &map);
    out->timeline.emplace_back(GST_BUFFER_PTS(b), GST_BUFFER_PTS(b) + GST_BUFFER_DURATION(b));
    gst_buffer_unref(b);
  }
  // Events and buffers come from separate queues: put the time line back in order.
  std::sort(out->timeline.begin(), out->timeline.end());
}

// The words and GAPs cover [from, to) without a hole or an overlap.
::testing::AssertionResult covers(const Output& out, GstClockTime from, GstClockTime to) {
  GstClockTime t = from;
  for (auto [start, end] : out.timeline) {
    if (start != t)
      return ::testing::AssertionFailure() << "at " << t << " the next item starts at " << start;
    t = end;
  }
  if (t != to) return ::testing::AssertionFailure() << "ends at " << t << ", not " << to;
  return ::testing::AssertionSuccess();
}

// kyutaisttcore's properties for the tests: the tiny model in float32, alone, and `p`.
Properties core_properties(Properties p) {
  p.emplace("model", repo());
  p.emplace("weights", "float32");
  p.emplace("batch", "false");
  return p;
}

// Pushes `audio` into `h` in buffers of `chunk` samples, timestamped from `start`.
void push_audio(GstHarness* h, const std::vector<float>& audio, GstClockTime start,
                size_t chunk = 1000) {
  for (size_t i = 0; i < audio.size(); i += chunk) {
    const size_t n = std::min(chunk, audio.size() - i);
    const GstClockTime pts = start + gst_util_uint64_scale_int(i, GST_SECOND, kSttRate);
    ASSERT_EQ(gst_harness_push(h, audio_buffer(audio.data() + i, n, pts)), GST_FLOW_OK);
  }
}

class SttCore : public ::testing::Test {
 protected:
  explicit SttCore(Properties extra = {})
      : stt_("kyutaisttcore", core_properties(std::move(extra))) {
    gst_harness_set_src_caps_str(stt_.h, kSttCaps);
  }

  void push(const std::vector<float>& audio, GstClockTime start, size_t chunk = 1000) {
    push_audio(stt_.h, audio, start, chunk);
  }

  Harnessed stt_;
};

GstClockTime duration_of(size_t samples) {
  return gst_util_uint64_scale_int(samples, GST_SECOND, kSttRate);
}

TEST_F(SttCore, WordsAreTheLibrarysOnTheSameCodes) {
  const std::vector<float> audio = test_audio(4.0);
  const GstClockTime t0 = 2 * GST_SECOND;
  const std::vector<Word> expected = reference(audio, t0);
  ASSERT_FALSE(expected.empty()) << "the tiny model says nothing about this audio";
  push(audio, t0, 1000);  // buffers that are not whole frames
  ASSERT_TRUE(gst_harness_push_event(stt_.h, gst_event_new_eos()));
  Output out;
  pull_output(stt_.h, &out);
  EXPECT_EQ(out.words, expected);
  // GAPs fill the time before, between and after the words, up to the end of the audio.
  EXPECT_TRUE(covers(out, t0, t0 + duration_of(audio.size())));
  EXPECT_TRUE(out.eos);
}

// Kyutai's reference on its own audio (tests/data/golden/stt_tiny, made by
// tools/reference/stt_golden.py): the element's words are the reference script's, placed from the
// stream's first sample. The script computes the last segment's times in float32, hence 1 us.
TEST_F(SttCore, WordsAreTheReferencesOnItsAudio) {
  const auto file = kyutai::SafetensorsFile::open(data_path("golden/stt_tiny/audio.safetensors"));
  const std::vector<float> audio = read_tensor<float>(*file, "audio", kyutai::DType::F32);
  const nlohmann::json expected =
      nlohmann::json::parse(std::ifstream(data_path("golden/stt_tiny/words.json"))).at("audio");
  ASSERT_GT(expected.size(), 10u);
  const GstClockTime t0 = 2 * GST_SECOND;
  push(audio, t0, 1000);
  ASSERT_TRUE(gst_harness_push_event(stt_.h, gst_event_new_eos()));
  Output out;
  pull_output(stt_.h, &out);
  ASSERT_EQ(out.words.size(), expected.size());
  const double us = static_cast<double>(GST_USECOND);
  for (size_t i = 0; i < out.words.size(); ++i) {
    const Word& w = out.words[i];
    EXPECT_EQ(w.text, expected[i][0].get<std::string>()) << "word " << i;
    EXPECT_NEAR(static_cast<double>(w.pts), static_cast<double>(at(t0, expected[i][1])), us)
        << "word " << i;
    EXPECT_NEAR(static_cast<double>(w.pts + w.duration),
                static_cast<double>(at(t0, expected[i][2])), us)
        << "word " << i;
  }
  EXPECT_TRUE(out.eos);
}

// The int8 KV cache is off by default; on, the words are the library's with an int8 cache.
class SttCoreInt8Kv : public SttCore {
 protected:
  SttCoreInt8Kv() : SttCore({{"kv-int8", "true"}}) {}
};

TEST_F(SttCore, TheInt8KvCacheIsOffByDefault) {
  gboolean int8 = TRUE;
  g_object_get(stt_.element, "kv-int8", &int8, nullptr);
  EXPECT_FALSE(int8);
}

TEST_F(SttCoreInt8Kv, WordsAreTheLibrarysWithAnInt8Cache) {
  const std::vector<float> audio = test_audio(4.0);
  const std::vector<Word> expected = reference(audio, 0, kyutai::KvCacheFormat::Int8);
  ASSERT_FALSE(expected.empty()) << "the tiny model says nothing about this audio";
  push(audio, 0);
  ASSERT_TRUE(gst_harness_push_event(stt_.h, gst_event_new_eos()));
  Output out;
  pull_output(stt_.h, &out);
  EXPECT_EQ(out.words, expected);
  EXPECT_TRUE(out.eos);
}

TEST_F(SttCore, TheLastWordsComeOutAtEos) {
  const std::vector<float> audio = test_audio(2.0);
  push(audio, 0);
  Output before;
  pull_output(stt_.h, &before);
  ASSERT_TRUE(gst_harness_push_event(stt_.h, gst_event_new_eos()));
  Output after;
  pull_output(stt_.h, &after);
  // The text lags the audio by the delay: words still held then come out at EOS, before it.
  std::vector<Word> all = before.words;
  all.insert(all.end(), after.words.begin(), after.words.end());
  EXPECT_EQ(all, reference(audio, 0));
  EXPECT_TRUE(after.eos);
  ASSERT_FALSE(after.events.empty());
  EXPECT_EQ(GST_EVENT_TYPE(after.events.back()), GST_EVENT_EOS);
}

TEST_F(SttCore, BuffersWithoutTimestampsCountSamples) {
  const std::vector<float> audio = test_audio(2.5);
  for (size_t i = 0; i < audio.size(); i += 4800)
    ASSERT_EQ(gst_harness_push(stt_.h, audio_buffer(audio.data() + i,
                                                    std::min<size_t>(4800, audio.size() - i))),
              GST_FLOW_OK);
  ASSERT_TRUE(gst_harness_push_event(stt_.h, gst_event_new_eos()));
  Output out;
  pull_output(stt_.h, &out);
  EXPECT_EQ(out.words, reference(audio, 0));
}

// Audio `a`, a `hole` (a GAP event, or a jump in the timestamps), then audio `b`: the words of
// the three as one, the hole as silence.
class SttHole : public SttCore, public ::testing::WithParamInterface<bool> {};

TEST_P(SttHole, IsSteppedAsSilence) {
  const bool gap_event = GetParam();
  const std::vector<float> a = test_audio(1.2), b = test_audio(1.6, 0.3);
  const GstClockTime hole = 400 * GST_MSECOND;
  push(a, 0, 1920);
  if (gap_event) {
    ASSERT_TRUE(gst_harness_push_event(stt_.h, gst_event_new_gap(duration_of(a.size()), hole)));
  }
  push(b, duration_of(a.size()) + hole, 1920);
  ASSERT_TRUE(gst_harness_push_event(stt_.h, gst_event_new_eos()));
  std::vector<float> whole = a;
  whole.resize(a.size() + hole * kSttRate / GST_SECOND, 0.0f);
  whole.insert(whole.end(), b.begin(), b.end());
  Output out;
  pull_output(stt_.h, &out);
  EXPECT_EQ(out.words, reference(whole, 0));
  EXPECT_TRUE(covers(out, 0, duration_of(whole.size())));
}

INSTANTIATE_TEST_SUITE_P(GapOrJump, SttHole, ::testing::Bool());

TEST_F(SttCore, ALongGapEndsTheStreamAndTheNextAudioBeginsANewOne) {
  const std::vector<float> a = test_audio(1.5), b = test_audio(1.5, 0.5);
  const GstClockTime b_start = 20 * GST_SECOND;
  push(a, 0);
  const GstClockTime a_end = duration_of(a.size());
  ASSERT_TRUE(gst_harness_push_event(stt_.h, gst_event_new_gap(a_end, b_start - a_end)));
  push(b, b_start);
  ASSERT_TRUE(gst_harness_push_event(stt_.h, gst_event_new_eos()));
  std::vector<Word> expected = reference(a, 0);
  for (const Word& w : reference(b, b_start)) expected.push_back(w);
  Output out;
  pull_output(stt_.h, &out);
  EXPECT_EQ(out.words, expected);
}

TEST_F(SttCore, AFlushForgetsTheStream) {
  const std::vector<float> audio = test_audio(2.0);
  push(audio, 0);
  ASSERT_TRUE(gst_harness_push_event(stt_.h, gst_event_new_flush_start()));
  ASSERT_TRUE(gst_harness_push_event(stt_.h, gst_event_new_flush_stop(TRUE)));
  GstSegment segment;
  gst_segment_init(&segment, GST_FORMAT_TIME);
  ASSERT_TRUE(gst_harness_push_event(stt_.h, gst_event_new_segment(&segment)));
  Output dropped;
  pull_output(stt_.h, &dropped);
  push(audio, 0);
  ASSERT_TRUE(gst_harness_push_event(stt_.h, gst_event_new_eos()));
  Output out;
  pull_output(stt_.h, &out);
  EXPECT_EQ(out.words, reference(audio, 0));  // a new stream: silence prefix and all
}

TEST_F(SttCore, LatencyIsTheDelayPlusOneFrame) {
  gst_harness_set_upstream_latency(stt_.h, 40 * GST_MSECOND);
  const GstClockTime ours = (stt_format().delay_frames + 1) * kSttFrameTime;
  EXPECT_EQ(gst_harness_query_latency(stt_.h), 40 * GST_MSECOND + ours);
  guint latency_ms = 0;
  g_object_get(stt_.element, "latency", &latency_ms, nullptr);
  EXPECT_EQ(latency_ms, ours / GST_MSECOND);
}

// Batched, a frame may wait 5 ms for the other streams (once: the encode is in the step).
TEST(SttCoreBatched, LatencyAddsTheBatchWait) {
  Harnessed stt("kyutaisttcore", {{"model", repo()}, {"weights", "float32"}});
  gst_harness_set_src_caps_str(stt.h, kSttCaps);
  gst_harness_set_upstream_latency(stt.h, 0);
  EXPECT_EQ(gst_harness_query_latency(stt.h),
            (stt_format().delay_frames + 1) * kSttFrameTime + 5 * GST_MSECOND);
}

TEST_F(SttCore, OutputCapsAreUtf8Text) {
  push(test_audio(0.2), 0);
  g_autoptr(GstCaps) caps = gst_pad_get_current_caps(stt_.h->sinkpad);
  ASSERT_TRUE(caps);
  g_autoptr(GstCaps) text = gst_caps_from_string("text/x-raw,format=utf8");
  EXPECT_TRUE(gst_caps_is_equal(caps, text));
}

// The end-of-turn element messages on `bus`, as their structures (owned by the test).
std::vector<GstStructure*> turn_messages(GstBus* bus) {
  std::vector<GstStructure*> out;
  while (GstMessage* m = gst_bus_pop_filtered(bus, GST_MESSAGE_ELEMENT)) {
    const GstStructure* s = gst_message_get_structure(m);
    if (gst_structure_has_name(s, "kyutai-stt-end-of-turn")) out.push_back(gst_structure_copy(s));
    gst_message_unref(m);
  }
  return out;
}

class SttTurn : public SttCore {
 protected:
  SttTurn() : SttCore({{"vad-threshold", "0"}}) {}
};

TEST_F(SttTurn, ATurnEndsAfterWordsWhenTheHeadPassesTheThreshold) {
  const std::vector<float> audio = test_audio(4.0);
  push(audio, 0);
  ASSERT_TRUE(gst_harness_push_event(stt_.h, gst_event_new_eos()));
  Output out;
  pull_output(stt_.h, &out);
  ASSERT_FALSE(out.words.empty());
  std::vector<GstStructure*> messages = turn_messages(stt_.bus);
  // Threshold 0: every step after a word ends the turn, so there is one end per run of steps
  // with words, each after a word; the custom events say the same as the messages.
  ASSERT_FALSE(messages.empty());
  ASSERT_EQ(out.turns.size(), messages.size());
  for (size_t i = 0; i < messages.size(); ++i) {
    EXPECT_TRUE(gst_structure_is_equal(messages[i], out.turns[i]));
    guint64 running_time = 0;
    ASSERT_TRUE(gst_structure_get_uint64(messages[i], "running-time", &running_time));
    EXPECT_GE(running_time, out.words.front().pts);
    for (const char* field : {"p-0-5s", "p-1s", "p-2s", "p-3s"}) {
      double p = -1;
      ASSERT_TRUE(gst_structure_get_double(messages[i], field, &p)) << field;
      EXPECT_GE(p, 0.0);
      EXPECT_LE(p, 1.0);
    }
    gst_structure_free(messages[i]);
  }
  EXPECT_LE(messages.size(), out.words.size());
}

// On the tiny model the words come out the same with either cache; the voice-activity
// probabilities of the end-of-turn messages show which one the stream used.
TEST(SttCoreKv, TheInt8CacheReachesTheStream) {
  const std::vector<float> audio = test_audio(4.0);
  auto probabilities = [&](bool int8) {
    Harnessed stt("kyutaisttcore",
                  core_properties({{"vad-threshold", "0"}, {"kv-int8", int8 ? "true" : "false"}}));
    gst_harness_set_src_caps_str(stt.h, kSttCaps);
    push_audio(stt.h, audio, 0);
    EXPECT_TRUE(gst_harness_push_event(stt.h, gst_event_new_eos()));
    Output out;
    pull_output(stt.h, &out);
    std::vector<double> all;
    for (GstStructure* m : turn_messages(stt.bus)) {
      for (const char* field : {"p-0-5s", "p-1s", "p-2s", "p-3s"}) {
        double v = -1;
        gst_structure_get_double(m, field, &v);
        all.push_back(v);
      }
      gst_structure_free(m);
    }
    return all;
  };
  const std::vector<double> model = probabilities(false), int8 = probabilities(true);
  ASSERT_FALSE(model.empty());
  EXPECT_NE(model, int8);
}

TEST_F(SttCore, NoTurnEndsWithThresholdOne) {
  g_object_set(stt_.element, "vad-threshold", 1.0, nullptr);
  push(test_audio(4.0), 0);
  ASSERT_TRUE(gst_harness_push_event(stt_.h, gst_event_new_eos()));
  Output out;
  pull_output(stt_.h, &out);
  ASSERT_FALSE(out.words.empty());
  EXPECT_TRUE(out.turns.empty());
  EXPECT_TRUE(turn_messages(stt_.bus).empty());
}

TEST_F(SttCore, AudioAtAnotherRateIsRefused) {
  EXPECT_FALSE(stt_.send_caps("audio/x-raw,format=F32LE,layout=interleaved,rate=16000,channels=1"));
  EXPECT_TRUE(is_error(pop_error(stt_.bus), GST_STREAM_ERROR, GST_STREAM_ERROR_FORMAT, "24000"));
}

TEST_F(SttCore, TheSinkOffersTheModelsRate) {
  g_autoptr(GstCaps) caps = gst_pad_query_caps(stt_.sinkpad(), nullptr);
  g_autoptr(GstCaps) wanted = gst_caps_from_string(kSttCaps);
  EXPECT_TRUE(gst_caps_is_equal(caps, wanted)) << gst_caps_to_string(caps);
}

TEST(SttCoreModel, AMissingModelIsNotFound) {
  GstElement* stt = make_element("kyutaisttcore", {{"model", "/nonexistent/stt"}});
  GstBus* bus = gst_bus_new();
  gst_element_set_bus(stt, bus);
  EXPECT_EQ(gst_element_set_state(stt, GST_STATE_PAUSED), GST_STATE_CHANGE_FAILURE);
  EXPECT_TRUE(is_error(pop_error(bus), GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND,
                       "Kyutai STT model '/nonexistent/stt' not found"));
  gst_element_set_state(stt, GST_STATE_NULL);
  gst_element_set_bus(stt, nullptr);
  gst_object_unref(bus);
  gst_object_unref(stt);
}

TEST(SttCoreModel, AMoshiModelIsNotAnSttModel) {
  GstElement* stt = make_element("kyutaisttcore", {{"model", data_path("golden/lm_tiny")}});
  GstBus* bus = gst_bus_new();
  gst_element_set_bus(stt, bus);
  EXPECT_EQ(gst_element_set_state(stt, GST_STATE_PAUSED), GST_STATE_CHANGE_FAILURE);
  const ErrorMessage e = pop_error(bus);
  EXPECT_TRUE(e.found);
  EXPECT_NE(e.message.find("Kyutai STT"), std::string::npos) << e.message;
  gst_element_set_state(stt, GST_STATE_NULL);
  gst_element_set_bus(stt, nullptr);
  gst_object_unref(bus);
  gst_object_unref(stt);
}

// kyutaistt in a pipeline: `source` ! kyutaistt ! appsink, run to EOS.
struct PipelineRun {
  std::vector<Word> words;
  bool eos = false;
  std::string error;
  GstClockTime min_latency = 0;
  guint latency_property = 0;
};

// The samples waiting in appsink `sink`, as words.
std::vector<Word> pull_words(GstElement* sink) {
  std::vector<Word> words;
  for (;;) {
    GstSample* sample = nullptr;
    g_signal_emit_by_name(sink, "try-pull-sample", GstClockTime(0), &sample);
    if (!sample) return words;
    GstBuffer* b = gst_sample_get_buffer(sample);
    GstMapInfo map;
    gst_buffer_map(b, &map, GST_MAP_READ);
    words.push_back({std::string(reinterpret_cast<const char*>(map.data), map.size),
                     GST_BUFFER_PTS(b), GST_BUFFER_DURATION(b)});
    gst_buffer_unmap(b, &map);
    gst_sample_unref(sample);
  }
}

// Plays `description` to EOS: what reached its appsink "out", the pipeline's latency, and the
// `latency` of its element "stt", if any.
PipelineRun play(const std::string& description) {
  GError* error = nullptr;
  GstElement* pipeline = gst_parse_launch(description.c_str(), &error);
  EXPECT_EQ(error, nullptr) << (error ? error->message : "");
  PipelineRun run;
  if (!pipeline) return run;
  gst_element_set_state(pipeline, GST_STATE_PLAYING);
  GstBus* bus = gst_element_get_bus(pipeline);
  GstMessage* m = gst_bus_timed_pop_filtered(bus, 120 * GST_SECOND,
                                             static_cast<GstMessageType>(GST_MESSAGE_EOS |
                                                                         GST_MESSAGE_ERROR));
  run.eos = m && GST_MESSAGE_TYPE(m) == GST_MESSAGE_EOS;
  if (m && GST_MESSAGE_TYPE(m) == GST_MESSAGE_ERROR) run.error = parse_error(m).message;
  if (m) gst_message_unref(m);
  GstQuery* q = gst_query_new_latency();
  if (gst_element_query(pipeline, q)) gst_query_parse_latency(q, nullptr, &run.min_latency, nullptr);
  gst_query_unref(q);
  if (GstElement* stt = gst_bin_get_by_name(GST_BIN(pipeline), "stt")) {
    g_object_get(stt, "latency", &run.latency_property, nullptr);
    gst_object_unref(stt);
  }
  GstElement* sink = gst_bin_get_by_name(GST_BIN(pipeline), "out");
  run.words = pull_words(sink);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(sink);
  gst_object_unref(bus);
  gst_object_unref(pipeline);
  return run;
}

PipelineRun run_pipeline(const std::string& source) {
  return play(source + " ! kyutaistt name=stt model=\"" + repo() +
              "\" weights=float32 ! appsink name=out sync=true wait-on-eos=false");
}

// 3 s of a tone at 48 kHz in stereo, live or not: kyutaistt converts and resamples it.
std::string tone_source(bool live) {
  return std::string("audiotestsrc wave=sine freq=440 samplesperbuffer=4800 num-buffers=30 ") +
         (live ? "is-live=true " : "") + "! audio/x-raw,rate=48000,channels=2";
}

std::vector<std::string> texts(const std::vector<Word>& words) {
  std::vector<std::string> out;
  for (const Word& w : words) out.push_back(w.text);
  return out;
}

TEST(KyutaiStt, TranscribesANonLiveSource) {
  const PipelineRun run = run_pipeline(tone_source(false));
  EXPECT_TRUE(run.eos) << run.error;
  GstClockTime last = 0;
  for (const Word& w : run.words) {
    EXPECT_GE(w.pts, last) << w;
    EXPECT_LE(w.pts + w.duration, 3 * GST_SECOND) << w;
    last = w.pts;
  }
}

TEST(KyutaiStt, TranscribesALiveSourceWithItsLatency) {
  const PipelineRun run = run_pipeline(tone_source(true));
  EXPECT_TRUE(run.eos) << run.error;
  // Batched by default: the batch wait.
  const GstClockTime ours = (stt_format().delay_frames + 1) * kSttFrameTime + 5 * GST_MSECOND;
  EXPECT_GE(run.min_latency, ours);
  EXPECT_EQ(run.latency_property, ours / GST_MSECOND);
  // The same audio live and not: the same words.
  EXPECT_EQ(texts(run.words), texts(run_pipeline(tone_source(false)).words));
}

TEST(KyutaiStt, StateChangesRepeat) {
  GstElement* stt = make_element("kyutaistt", {{"model", repo()}, {"weights", "float32"}});
  for (int i = 0; i < 3; ++i) {
    EXPECT_NE(gst_element_set_state(stt, GST_STATE_PAUSED), GST_STATE_CHANGE_FAILURE);
    EXPECT_NE(gst_element_set_state(stt, GST_STATE_NULL), GST_STATE_CHANGE_FAILURE);
  }
  gst_object_unref(stt);
}

TEST(KyutaiStt, ExposesTheCoresProperties) {
  GstElement* stt = make_element(
      "kyutaistt", {{"vad-threshold", "0.25"}, {"vad-head", "1"}, {"kv-int8", "true"}});
  GstElement* core = gst_bin_get_by_name(GST_BIN(stt), "stt");
  ASSERT_TRUE(core);
  double threshold = 0;
  int head = 0;
  gboolean int8 = FALSE;
  g_object_get(core, "vad-threshold", &threshold, "vad-head", &head, "kv-int8", &int8, nullptr);
  EXPECT_EQ(threshold, 0.25);
  EXPECT_EQ(head, 1);
  EXPECT_TRUE(int8);
  gchar* model = nullptr;
  g_object_get(stt, "model", &model, nullptr);
  EXPECT_STREQ(model, "kyutai/stt-1b-en_fr");
  g_free(model);
  gst_object_unref(core);
  gst_object_unref(stt);
}

// matroskademux gives subtitles as Pango markup: the text with &, <, >, " and ' escaped.
std::vector<std::string> unescaped(const std::vector<std::string>& markup) {
  std::vector<std::string> out;
  for (std::string t : markup) {
    for (auto [entity, c] : {std::pair{"&quot;", "\""}, {"&apos;", "'"}, {"&lt;", "<"},
                             {"&gt;", ">"}, {"&amp;", "&"}})
      for (size_t at = t.find(entity); at != std::string::npos; at = t.find(entity, at + 1))
        t.replace(at, std::string(entity).size(), c);
    out.push_back(t);
  }
  return out;
}

TEST(LiveSubtitles, TheScriptMuxesTheWordsBesideTheAudio) {
  TempDir dir;
  const std::string speech = data_path("speechlike.wav"), out = dir.path("subtitles.mkv");
  const Outcome r = run("WEIGHTS=float32 pipelines/live-subtitles.sh " + quote(speech) + " " +
                            quote(out),
                        dir);
  ASSERT_EQ(r.status, 0) << r.output;
  const PipelineRun muxed = play("filesrc location=\"" + out +
                                 "\" ! matroskademux name=d d.subtitle_0 ! appsink name=out "
                                 "sync=false wait-on-eos=false d.audio_0 ! queue ! opusdec ! "
                                 "fakesink");
  ASSERT_TRUE(muxed.eos) << muxed.error;
  // The subtitles are the words kyutaistt gives for the file, at their times.
  const PipelineRun direct = run_pipeline("filesrc location=\"" + speech + "\" ! wavparse");
  ASSERT_TRUE(direct.eos) << direct.error;
  ASSERT_FALSE(direct.words.empty());
  ASSERT_EQ(unescaped(texts(muxed.words)), texts(direct.words));
  for (size_t i = 0; i < muxed.words.size(); ++i)
    EXPECT_EQ(muxed.words[i].pts, direct.words[i].pts) << muxed.words[i];
}

}  // namespace
}  // namespace gstmimi::test
