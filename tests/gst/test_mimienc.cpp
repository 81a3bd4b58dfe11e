// mimienc under GstHarness with the mimi_tiny model: golden parity, caps, timing, latency, EOS
// drain, flush and discontinuities.
#include <gst/audio/audio.h>

#include <algorithm>
#include <cmath>

#include "gst_test_util.h"

namespace gstmimi::test {
namespace {

class MimiEnc : public ::testing::Test {
 protected:
  MimiEnc() : enc_("mimienc", {{"model", tiny_model()}}) {}

  void set_caps(const std::string& caps = enc_sink_caps()) {
    gst_harness_set_src_caps_str(enc_.h, caps.c_str());
  }

  // Pushes samples [begin, end) of the golden audio in chunks of `chunk` samples, timestamped
  // from `start` (unless `timestamps` is false).
  void push_audio(size_t begin, size_t end, size_t chunk, GstClockTime start = 0,
                  bool discont = false) {
    const std::vector<float>& audio = golden().audio;
    for (size_t i = begin; i < end; i += chunk) {
      const size_t n = std::min(chunk, end - i);
      GstBuffer* b = audio_buffer(audio.data() + i, n,
                                  start + gst_util_uint64_scale_int(i - begin, GST_SECOND, kRate));
      if (discont && i == begin) GST_BUFFER_FLAG_SET(b, GST_BUFFER_FLAG_DISCONT);
      ASSERT_EQ(gst_harness_push(enc_.h, b), GST_FLOW_OK);
    }
  }

  // The codes of every output buffer, frame after frame.
  std::vector<std::vector<int64_t>> pull_codes() {
    std::vector<GstBuffer*> buffers = enc_.pull_all();
    std::vector<std::vector<int64_t>> frames;
    for (GstBuffer* b : buffers) frames.push_back(buffer_codes(b));
    unref_all(buffers);
    return frames;
  }

  static std::vector<std::vector<int64_t>> golden_frames(int first = 0, int count = kFrames) {
    std::vector<std::vector<int64_t>> frames;
    for (int f = first; f < first + count; ++f)
      frames.push_back(golden().frame(golden().codes_stream, f));
    return frames;
  }

  void flush() {
    ASSERT_TRUE(gst_harness_push_event(enc_.h, gst_event_new_flush_start()));
    ASSERT_TRUE(gst_harness_push_event(enc_.h, gst_event_new_flush_stop(TRUE)));
    GstSegment segment;
    gst_segment_init(&segment, GST_FORMAT_TIME);
    ASSERT_TRUE(gst_harness_push_event(enc_.h, gst_event_new_segment(&segment)));
  }

  Harnessed enc_;
};

TEST_F(MimiEnc, GoldenAudioGivesExactlyTheStreamingCodes) {
  set_caps();
  push_audio(0, golden().audio.size(), 100);  // chunks unaligned with the 48-sample frames
  ASSERT_TRUE(gst_harness_push_event(enc_.h, gst_event_new_eos()));
  EXPECT_EQ(pull_codes(), golden_frames());
}

TEST_F(MimiEnc, OutputCapsDescribeTheModelAndTheCodebooks) {
  set_caps();
  push_audio(0, kFrame, kFrame);
  g_autoptr(GstCaps) caps = gst_pad_get_current_caps(enc_.h->sinkpad);
  g_autoptr(GstCaps) expected = gst_caps_from_string(
      "audio/x-mimi,rate=24000,channels=1,frame-size=48,codebooks=8,cardinality=64");
  ASSERT_NE(caps, nullptr);
  EXPECT_TRUE(gst_caps_is_equal(caps, expected)) << gst_caps_to_string(caps);
  gst_buffer_unref(gst_harness_pull(enc_.h));
}

TEST_F(MimiEnc, OffersOnlyTheModelRateOnceStarted) {
  g_autoptr(GstCaps) caps = gst_pad_peer_query_caps(enc_.h->srcpad, nullptr);
  g_autoptr(GstCaps) expected = gst_caps_from_string(enc_sink_caps().c_str());
  EXPECT_TRUE(gst_caps_is_equal(caps, expected)) << gst_caps_to_string(caps);
}

TEST_F(MimiEnc, RefusesAnotherRateWithAClearError) {
  set_caps(enc_sink_caps(16000));  // the encoder base class checks caps with the first buffer
  const float silence[kFrame] = {};
  EXPECT_EQ(gst_harness_push(enc_.h, audio_buffer(silence, kFrame, 0)), GST_FLOW_NOT_NEGOTIATED);
  EXPECT_TRUE(is_error(pop_error(enc_.bus), GST_STREAM_ERROR, GST_STREAM_ERROR_FORMAT, "24000"));
}

TEST_F(MimiEnc, RefusesStereoAndOtherFormats) {
  for (const std::string& caps :
       {enc_sink_caps(kRate, 2), std::string("audio/x-raw,format=S16LE,rate=24000,channels=1")}) {
    EXPECT_FALSE(enc_.send_caps(caps)) << caps;
  }
}

TEST_F(MimiEnc, StampsEachFrameWithItsFirstSampleAndOneFrameOfDuration) {
  set_caps();
  const GstClockTime start = GST_SECOND;
  push_audio(0, 10 * kFrame, 7 * kFrame / 3, start);
  std::vector<GstBuffer*> buffers = enc_.pull_all();
  ASSERT_EQ(buffers.size(), 10u);
  for (size_t f = 0; f < buffers.size(); ++f) {
    EXPECT_EQ(GST_BUFFER_PTS(buffers[f]), start + f * kFrameTime) << "frame " << f;
    EXPECT_EQ(GST_BUFFER_DURATION(buffers[f]), kFrameTime) << "frame " << f;
    EXPECT_EQ(gst_buffer_get_size(buffers[f]), 2u * kCodebooks);
  }
  unref_all(buffers);
}

TEST_F(MimiEnc, ReportsOneFrameOfLatency) {
  EXPECT_EQ(gst_harness_query_latency(enc_.h), kFrameTime);
}

// The padding is marked with a clipping meta, as opusenc marks its own, and the buffer lasts as
// long as the samples it stands for.
TEST_F(MimiEnc, EosPadsThePartialLastFrameWithZerosAndMarksThePadding) {
  set_caps();
  push_audio(0, 2 * kFrame + 4, 2 * kFrame + 4);
  ASSERT_TRUE(gst_harness_push_event(enc_.h, gst_event_new_eos()));
  std::vector<GstBuffer*> buffers = enc_.pull_all();
  ASSERT_EQ(buffers.size(), 3u);
  EXPECT_EQ(GST_BUFFER_PTS(buffers[2]), 2 * kFrameTime);
  EXPECT_EQ(GST_BUFFER_DURATION(buffers[2]),
            gst_util_uint64_scale_int(2 * kFrame + 4, GST_SECOND, kRate) - 2 * kFrameTime);
  for (int f = 0; f < 2; ++f) EXPECT_EQ(gst_buffer_get_audio_clipping_meta(buffers[f]), nullptr);
  const GstAudioClippingMeta* meta = gst_buffer_get_audio_clipping_meta(buffers[2]);
  ASSERT_NE(meta, nullptr);
  EXPECT_EQ(meta->format, GST_FORMAT_DEFAULT);
  EXPECT_EQ(meta->start, 0u);
  EXPECT_EQ(meta->end, static_cast<guint64>(kFrame - 4));
  const std::vector<int64_t> last = buffer_codes(buffers[2]);
  unref_all(buffers);

  // The same frame, padded by hand, through a fresh encoder.
  Harnessed fresh("mimienc", {{"model", tiny_model()}});
  gst_harness_set_src_caps_str(fresh.h, enc_sink_caps().c_str());
  std::vector<float> audio(golden().audio.begin(), golden().audio.begin() + 3 * kFrame);
  std::fill(audio.begin() + 2 * kFrame + 4, audio.end(), 0.0f);
  ASSERT_EQ(gst_harness_push(fresh.h, audio_buffer(audio.data(), audio.size(), 0)), GST_FLOW_OK);
  buffers = fresh.pull_all();
  ASSERT_EQ(buffers.size(), 3u);
  EXPECT_EQ(buffer_codes(buffers[2]), last);
  unref_all(buffers);
}

TEST_F(MimiEnc, AfterAFlushTheOutputIsAFreshEncodersOutput) {
  set_caps();
  push_audio(kFrame * 3, kFrame * 23, 160);
  EXPECT_EQ(pull_codes().size(), 20u);
  flush();
  push_audio(0, golden().audio.size(), 100);
  EXPECT_EQ(pull_codes(), golden_frames());
}

TEST_F(MimiEnc, ADiscontinuityStartsANewStream) {
  set_caps();
  push_audio(kFrame * 3, kFrame * 23, kFrame);
  EXPECT_EQ(pull_codes().size(), 20u);
  push_audio(0, golden().audio.size(), 96, 20 * kFrameTime, /*discont=*/true);
  EXPECT_EQ(pull_codes(), golden_frames());
}

TEST_F(MimiEnc, WithoutADiscontinuityTheStreamGoesOn) {
  set_caps();
  push_audio(kFrame * 3, kFrame * 23, kFrame);
  EXPECT_EQ(pull_codes().size(), 20u);
  push_audio(0, golden().audio.size(), 96, 20 * kFrameTime);
  EXPECT_NE(pull_codes(), golden_frames());  // the encoder remembers the first 20 frames
}

TEST_F(MimiEnc, AGapIsEncodedAsSilence) {
  // Two frames of audio, a GAP of three frames, two more frames: seven frames of codes with
  // continuous timestamps, the gap's being the codes of silence.
  set_caps();
  push_audio(0, 2 * kFrame, kFrame);
  ASSERT_TRUE(gst_harness_push_event(enc_.h, gst_event_new_gap(2 * kFrameTime, 3 * kFrameTime)));
  push_audio(2 * kFrame, 4 * kFrame, kFrame, 5 * kFrameTime);
  std::vector<GstBuffer*> buffers = enc_.pull_all();
  ASSERT_EQ(buffers.size(), 7u);
  for (size_t f = 0; f < buffers.size(); ++f)
    EXPECT_EQ(GST_BUFFER_PTS(buffers[f]), f * kFrameTime) << "frame " << f;
  unref_all(buffers);
  GstEvent* event;
  while ((event = gst_harness_try_pull_event(enc_.h))) {
    EXPECT_NE(GST_EVENT_TYPE(event), GST_EVENT_GAP);
    gst_event_unref(event);
  }
}

// GAPs over time already covered (by audio or an earlier GAP) add no silence: 100 GAPs at the
// same time cost one fill, not 100 (100 GAPs of 5 s took 12.4 s, with timestamps going back).
TEST_F(MimiEnc, RepeatedGapsFillOnlyTheTimeNotYetCovered) {
  set_caps();
  push_audio(0, 2 * kFrame, kFrame);
  const GstClockTime gap = 100 * kFrameTime;
  for (int i = 0; i < 100; ++i)
    ASSERT_TRUE(gst_harness_push_event(enc_.h, gst_event_new_gap(2 * kFrameTime, gap)));
  // GAPs inside the audio already given, or inside the filled time, add nothing either.
  ASSERT_TRUE(gst_harness_push_event(enc_.h, gst_event_new_gap(0, kFrameTime)));
  ASSERT_TRUE(gst_harness_push_event(enc_.h, gst_event_new_gap(10 * kFrameTime, 50 * kFrameTime)));
  // A GAP reaching past the filled time fills only the part past it.
  ASSERT_TRUE(gst_harness_push_event(enc_.h, gst_event_new_gap(52 * kFrameTime, 60 * kFrameTime)));
  std::vector<GstBuffer*> buffers = enc_.pull_all();
  ASSERT_EQ(buffers.size(), 112u);  // 2 frames of audio, 100 + 10 of silence
  for (size_t f = 0; f < buffers.size(); ++f)
    EXPECT_EQ(GST_BUFFER_PTS(buffers[f]), f * kFrameTime) << "frame " << f;
  unref_all(buffers);
}

// Raw audio straight from filesrc comes in a BYTES segment, which GstAudioEncoder drops; the
// codes must still follow a TIME segment ("Got data flow before segment event" otherwise).
TEST_F(MimiEnc, AfterABytesSegmentTheOutputHasATimeSegment) {
  ASSERT_TRUE(gst_harness_push_event(enc_.h, gst_event_new_stream_start("raw")));
  ASSERT_TRUE(gst_harness_push_event(
      enc_.h, gst_event_new_caps(gst_caps_from_string(enc_sink_caps().c_str()))));
  GstSegment bytes;
  gst_segment_init(&bytes, GST_FORMAT_BYTES);
  ASSERT_TRUE(gst_harness_push_event(enc_.h, gst_event_new_segment(&bytes)));
  push_audio(0, 2 * kFrame, kFrame);
  std::vector<GstBuffer*> codes = enc_.pull_all();
  EXPECT_EQ(codes.size(), 2u);
  unref_all(codes);
  GstEvent* segment = gst_pad_get_sticky_event(enc_.h->sinkpad, GST_EVENT_SEGMENT, 0);
  ASSERT_NE(segment, nullptr);
  const GstSegment* s = nullptr;
  gst_event_parse_segment(segment, &s);
  EXPECT_EQ(s->format, GST_FORMAT_TIME);
  gst_event_unref(segment);
}

// A GAP costs bounded time and memory whatever its duration: past 5 s it is a discontinuity
// that goes downstream, not hours of silence to encode (a one-hour GAP took 100 s and 330 MB,
// one of G_MAXUINT64 aborted on a 442 TB allocation). The memory is this test's own peak: the
// process's would hide any allocation below what an earlier test reached.
TEST_F(MimiEnc, HugeGapsAreDiscontinuitiesThatCostNoTimeOrMemory) {
  set_caps();
  push_audio(0, 2 * kFrame, kFrame);
  ASSERT_TRUE(reset_peak_rss()) << "cannot reset the peak RSS (/proc/self/clear_refs)";
  const long rss_before = peak_rss_kib();
  const gint64 t0 = g_get_monotonic_time();
  const GstClockTime hour = 3600 * GST_SECOND, after = 2 * kFrameTime + hour;
  ASSERT_TRUE(gst_harness_push_event(enc_.h, gst_event_new_gap(2 * kFrameTime, hour)));
  push_audio(0, 2 * kFrame, kFrame, after);
  const GstClockTime end = after + 2 * kFrameTime;
  ASSERT_TRUE(gst_harness_push_event(enc_.h, gst_event_new_gap(end, G_MAXUINT64 - end - 1)));
  EXPECT_LT(g_get_monotonic_time() - t0, 2 * G_USEC_PER_SEC);
  EXPECT_LT(peak_rss_kib() - rss_before, 50 * 1024);

  std::vector<GstBuffer*> buffers = enc_.pull_all();
  ASSERT_EQ(buffers.size(), 4u);
  EXPECT_EQ(GST_BUFFER_PTS(buffers[2]), after);
  EXPECT_EQ(GST_BUFFER_PTS(buffers[3]), after + kFrameTime);
  // After the discontinuity a new stream: a fresh encoder's codes.
  EXPECT_EQ(buffer_codes(buffers[2]), golden().frame(golden().codes_stream, 0));
  EXPECT_EQ(buffer_codes(buffers[3]), golden().frame(golden().codes_stream, 1));
  unref_all(buffers);
  // The hour goes downstream (the base class keeps the endless one to itself).
  const auto gaps = pull_gaps(enc_.h);
  ASSERT_GE(gaps.size(), 1u);
  EXPECT_EQ(gaps[0], std::make_pair(2 * kFrameTime, hour));
}

// One NaN or infinity must not silence the stream: the library encodes it as 0, so
// the codes after it are those after a frame of zeros; mimienc warns once per stream.
TEST_F(MimiEnc, NonFiniteSamplesAreEncodedAsSilenceWithOneWarning) {
  auto encode = [](const std::vector<float>& first, int* warnings) {
    Harnessed enc("mimienc", {{"model", tiny_model()}});
    gst_harness_set_src_caps_str(enc.h, enc_sink_caps().c_str());
    for (int repeat = 0; repeat < 2; ++repeat)
      EXPECT_EQ(gst_harness_push(enc.h, audio_buffer(first.data(), first.size())), GST_FLOW_OK);
    const std::vector<float>& audio = golden().audio;
    EXPECT_EQ(gst_harness_push(enc.h, audio_buffer(audio.data(), 20 * kFrame)), GST_FLOW_OK);
    std::vector<std::vector<int64_t>> frames;
    for (GstBuffer* b : enc.pull_all()) {
      frames.push_back(buffer_codes(b));
      gst_buffer_unref(b);
    }
    *warnings = 0;
    while (GstMessage* m = gst_bus_pop_filtered(enc.bus, GST_MESSAGE_WARNING)) {
      ++*warnings;
      gst_message_unref(m);
    }
    return frames;
  };
  int warnings = 0;
  const auto after_zeros = encode(std::vector<float>(kFrame, 0.f), &warnings);
  EXPECT_EQ(warnings, 0);
  std::vector<float> bad(kFrame, 0.f);
  bad[0] = std::nanf("");
  bad[7] = INFINITY;
  const auto after_bad = encode(bad, &warnings);
  EXPECT_EQ(warnings, 1);  // two bad frames, one warning
  ASSERT_EQ(after_bad.size(), 22u);
  for (size_t f = 2; f < after_bad.size(); ++f)
    EXPECT_EQ(after_bad[f], after_zeros[f]) << "frame " << f;
}

TEST_F(MimiEnc, PostsTheNominalBitrate) {
  set_caps();
  push_audio(0, kFrame, kFrame);
  gst_buffer_unref(gst_harness_pull(enc_.h));
  guint bitrate = 0;
  for (GstEvent* event; (event = gst_harness_try_pull_event(enc_.h)) != nullptr;) {
    if (GST_EVENT_TYPE(event) == GST_EVENT_TAG) {
      GstTagList* tags = nullptr;
      gst_event_parse_tag(event, &tags);
      gst_tag_list_get_uint(tags, GST_TAG_NOMINAL_BITRATE, &bitrate);
    }
    gst_event_unref(event);
  }
  EXPECT_EQ(bitrate, 8u * 6u * 500u);  // 8 codebooks x log2(64) bits x 500 frames per second
}

}  // namespace
}  // namespace gstmimi::test

namespace gstmimi::test {
namespace {

// models/moshi-tiny holds a Mimi with the released frame rate (12.5 Hz, 1920 samples, 80 ms)
// and tiny widths: frames, timestamps and latency at the real scale.
TEST(MimiAtTheRealFrameRate, EncodesEightyMillisecondFramesAndDecodesThemBack) {
  const std::string model = source_root() + "/models/moshi-tiny";
  if (!g_file_test((model + "/mimi.safetensors").c_str(), G_FILE_TEST_EXISTS))
    GTEST_SKIP() << "needs " << model;
  const GstClockTime frame_time = 80 * GST_MSECOND;
  Harnessed enc("mimienc", {{"model", model}, {"num-codebooks", "8"}});
  EXPECT_EQ(gst_harness_query_latency(enc.h), frame_time);
  gst_harness_set_src_caps_str(enc.h, enc_sink_caps().c_str());
  const std::vector<float> audio(3 * 1920, 0.1f);
  ASSERT_EQ(gst_harness_push(enc.h, audio_buffer(audio.data(), audio.size(), 0)), GST_FLOW_OK);
  std::vector<GstBuffer*> codes = enc.pull_all();
  ASSERT_EQ(codes.size(), 3u);
  g_autoptr(GstCaps) caps = gst_pad_get_current_caps(enc.h->sinkpad);
  const GstStructure* s = gst_caps_get_structure(caps, 0);
  gint frame_size = 0;
  ASSERT_TRUE(gst_structure_get_int(s, "frame-size", &frame_size));
  EXPECT_EQ(frame_size, 1920);

  Harnessed dec("mimidec", {{"model", model}});
  gst_harness_set_src_caps(dec.h, gst_caps_copy(caps));
  for (size_t f = 0; f < codes.size(); ++f) {
    EXPECT_EQ(GST_BUFFER_PTS(codes[f]), f * frame_time);
    EXPECT_EQ(GST_BUFFER_DURATION(codes[f]), frame_time);
    ASSERT_EQ(gst_harness_push(dec.h, codes[f]), GST_FLOW_OK);
  }
  std::vector<GstBuffer*> out = dec.pull_all();
  ASSERT_EQ(out.size(), 3u);
  for (size_t f = 0; f < out.size(); ++f) {
    EXPECT_EQ(GST_BUFFER_PTS(out[f]), f * frame_time);
    EXPECT_EQ(gst_buffer_get_size(out[f]), 1920 * sizeof(float));
  }
  unref_all(out);
}

// mimienc marks the zeros that pad the last frame and mimidec drops them: 1000.5 frames of audio
// come back as exactly as many samples, timed end to end.
TEST(MimiRoundTrip, GivesBackExactlyTheInputsSamples) {
  const size_t samples = 1000 * kFrame + kFrame / 2;
  std::vector<float> audio(samples);
  for (size_t i = 0; i < samples; ++i) audio[i] = 0.3f * std::sin(0.05f * static_cast<float>(i));
  Harnessed enc("mimienc", {{"model", tiny_model()}});
  gst_harness_set_src_caps_str(enc.h, enc_sink_caps().c_str());
  ASSERT_EQ(gst_harness_push(enc.h, audio_buffer(audio.data(), samples, 0)), GST_FLOW_OK);
  ASSERT_TRUE(gst_harness_push_event(enc.h, gst_event_new_eos()));
  Harnessed dec("mimidec", {{"model", tiny_model()}});
  gst_harness_set_src_caps_str(dec.h, dec_sink_caps().c_str());
  std::vector<GstBuffer*> codes = enc.pull_all();
  ASSERT_EQ(codes.size(), 1001u);
  for (GstBuffer* b : codes) ASSERT_EQ(gst_harness_push(dec.h, b), GST_FLOW_OK);
  ASSERT_TRUE(gst_harness_push_event(dec.h, gst_event_new_eos()));
  std::vector<GstBuffer*> out = dec.pull_all();
  size_t decoded = 0;
  for (GstBuffer* b : out) decoded += gst_buffer_get_size(b) / sizeof(float);
  EXPECT_EQ(decoded, samples);
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(GST_BUFFER_PTS(out.back()) + GST_BUFFER_DURATION(out.back()),
            gst_util_uint64_scale_int(samples, GST_SECOND, kRate));
  unref_all(out);
}

}  // namespace
}  // namespace gstmimi::test
