// mimidec under GstHarness with the mimi_tiny model: golden parity, caps, timing, GAP, flush,
// discontinuities, bad input and byte-stream input.
#include <gst/audio/audio.h>

#include <algorithm>

#include "gst_test_util.h"

namespace gstmimi::test {
namespace {

class MimiDec : public ::testing::Test {
 protected:
  MimiDec() : dec_("mimidec", {{"model", tiny_model()}}) {}

  void set_caps(const std::string& caps = dec_sink_caps()) {
    gst_harness_set_src_caps_str(dec_.h, caps.c_str());
  }

  // Pushes frames [first, first + count) of codes_batch, one per buffer, timestamped from
  // `start` (GST_CLOCK_TIME_NONE: no timestamps).
  void push_frames(int first, int count, GstClockTime start = 0, bool discont = false) {
    for (int f = first; f < first + count; ++f) {
      const GstClockTime pts =
          GST_CLOCK_TIME_IS_VALID(start) ? start + (f - first) * kFrameTime : start;
      GstBuffer* b = codes_buffer(golden().frame(golden().codes_batch, f), pts);
      if (discont && f == first) GST_BUFFER_FLAG_SET(b, GST_BUFFER_FLAG_DISCONT);
      ASSERT_EQ(gst_harness_push(dec_.h, b), GST_FLOW_OK) << "frame " << f;
    }
  }

  // All output samples, concatenated.
  std::vector<float> pull_audio(size_t* buffers_pulled = nullptr) {
    std::vector<GstBuffer*> buffers = dec_.pull_all();
    std::vector<float> audio;
    for (GstBuffer* b : buffers) {
      const std::vector<float> s = buffer_samples(b);
      audio.insert(audio.end(), s.begin(), s.end());
    }
    if (buffers_pulled) *buffers_pulled = buffers.size();
    unref_all(buffers);
    return audio;
  }

  void flush() {
    ASSERT_TRUE(gst_harness_push_event(dec_.h, gst_event_new_flush_start()));
    ASSERT_TRUE(gst_harness_push_event(dec_.h, gst_event_new_flush_stop(TRUE)));
    GstSegment segment;
    gst_segment_init(&segment, GST_FORMAT_TIME);
    ASSERT_TRUE(gst_harness_push_event(dec_.h, gst_event_new_segment(&segment)));
  }

  Harnessed dec_;
};

TEST_F(MimiDec, GoldenCodesGiveTheStreamingAudio) {
  set_caps();
  push_frames(0, kFrames);
  size_t buffers = 0;
  const std::vector<float> audio = pull_audio(&buffers);
  EXPECT_EQ(buffers, static_cast<size_t>(kFrames));
  ASSERT_EQ(audio.size(), golden().audio_stream.size());
  EXPECT_LE(rel_l2(audio, golden().audio_stream), 1e-5);
}

// mimienc marks the zeros padding its last frame with a clipping meta; mimidec drops them.
TEST_F(MimiDec, DropsTheSamplesAClippingMetaMarks) {
  set_caps();
  push_frames(0, 2);
  GstBuffer* last = codes_buffer(golden().frame(golden().codes_batch, 2), 2 * kFrameTime);
  gst_buffer_add_audio_clipping_meta(last, GST_FORMAT_DEFAULT, 0, kFrame - 5);
  ASSERT_EQ(gst_harness_push(dec_.h, last), GST_FLOW_OK);
  std::vector<GstBuffer*> buffers = dec_.pull_all();
  ASSERT_EQ(buffers.size(), 3u);
  EXPECT_EQ(gst_buffer_get_size(buffers[2]), 5 * sizeof(float));
  EXPECT_EQ(GST_BUFFER_PTS(buffers[2]), 2 * kFrameTime);
  EXPECT_EQ(GST_BUFFER_DURATION(buffers[2]), gst_util_uint64_scale_int(5, GST_SECOND, kRate));
  EXPECT_EQ(gst_buffer_get_audio_clipping_meta(buffers[2]), nullptr);  // applied, not passed on
  const std::vector<float> kept = buffer_samples(buffers[2]);
  unref_all(buffers);

  // The first 5 samples of the unclipped frame.
  flush();
  push_frames(0, 3);
  buffers = dec_.pull_all();
  ASSERT_EQ(buffers.size(), 3u);
  const std::vector<float> whole = buffer_samples(buffers[2]);
  EXPECT_EQ(kept, std::vector<float>(whole.begin(), whole.begin() + 5));
  unref_all(buffers);
}

TEST_F(MimiDec, AFrameClippedWhollyGivesNoAudio) {
  set_caps();
  GstBuffer* codes = codes_buffer(golden().frame(golden().codes_batch, 0), 0);
  gst_buffer_add_audio_clipping_meta(codes, GST_FORMAT_DEFAULT, 10, kFrame);
  ASSERT_EQ(gst_harness_push(dec_.h, codes), GST_FLOW_OK);
  EXPECT_TRUE(pull_audio().empty());
}

TEST_F(MimiDec, OutputsMonoFloatAtTheModelRate) {
  set_caps();
  push_frames(0, 1);
  g_autoptr(GstCaps) caps = gst_pad_get_current_caps(dec_.h->sinkpad);
  g_autoptr(GstCaps) expected = gst_caps_from_string(enc_sink_caps().c_str());
  ASSERT_NE(caps, nullptr);
  EXPECT_TRUE(gst_caps_is_equal(caps, expected)) << gst_caps_to_string(caps);
  EXPECT_EQ(pull_audio().size(), static_cast<size_t>(kFrame));
}

TEST_F(MimiDec, OffersTheModelFormatOnceStarted) {
  g_autoptr(GstCaps) caps = gst_pad_peer_query_caps(dec_.h->srcpad, nullptr);
  g_autoptr(GstCaps) expected = gst_caps_from_string(
      "audio/x-mimi,rate=24000,channels=1,frame-size=48,codebooks=[1,8],cardinality=64");
  EXPECT_TRUE(gst_caps_is_equal(caps, expected)) << gst_caps_to_string(caps);
}

TEST_F(MimiDec, RefusesCapsThatDoNotFitTheModelWithAClearError) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"audio/x-mimi,rate=24000,channels=1,frame-size=48,codebooks=8,cardinality=2048",
       "cardinality is 2048 but the model's is 64"},
      {"audio/x-mimi,rate=16000,channels=1,frame-size=48,codebooks=8,cardinality=64",
       "rate is 16000"},
      {"audio/x-mimi,rate=24000,channels=1,frame-size=1920,codebooks=8,cardinality=64",
       "frame-size is 1920"},
      {dec_sink_caps(9), "codebooks is 9 but the model has 8"},
  };
  for (const auto& [caps, reason] : cases) {
    EXPECT_FALSE(dec_.send_caps(caps)) << caps;
    EXPECT_TRUE(is_error(pop_error(dec_.bus), GST_STREAM_ERROR, GST_STREAM_ERROR_FORMAT, reason));
  }
}

TEST_F(MimiDec, RefusesOtherMediaTypes) {
  EXPECT_FALSE(dec_.send_caps(enc_sink_caps()));
}

TEST_F(MimiDec, KeepsInputTimestampsAndGivesOneFrameOfDuration) {
  set_caps();
  push_frames(0, 5, GST_SECOND);
  std::vector<GstBuffer*> buffers = dec_.pull_all();
  ASSERT_EQ(buffers.size(), 5u);
  for (size_t f = 0; f < buffers.size(); ++f) {
    EXPECT_EQ(GST_BUFFER_PTS(buffers[f]), GST_SECOND + f * kFrameTime) << "frame " << f;
    EXPECT_EQ(GST_BUFFER_DURATION(buffers[f]), kFrameTime) << "frame " << f;
    EXPECT_EQ(gst_buffer_get_size(buffers[f]), kFrame * sizeof(float));
  }
  unref_all(buffers);
}

TEST_F(MimiDec, CountsFramesWhenBuffersHaveNoTimestamps) {
  set_caps();
  push_frames(0, 5, GST_CLOCK_TIME_NONE);
  std::vector<GstBuffer*> buffers = dec_.pull_all();
  ASSERT_EQ(buffers.size(), 5u);
  for (size_t f = 0; f < buffers.size(); ++f) {
    EXPECT_EQ(GST_BUFFER_PTS(buffers[f]), f * kFrameTime) << "frame " << f;
    EXPECT_EQ(GST_BUFFER_DURATION(buffers[f]), kFrameTime) << "frame " << f;
  }
  unref_all(buffers);
}

TEST_F(MimiDec, TurnsAGapIntoSilenceOfTheSameDuration) {
  set_caps();
  push_frames(0, 3, 0);
  const GstClockTime gap_start = 3 * kFrameTime, gap_duration = 10 * GST_MSECOND;
  ASSERT_TRUE(gst_harness_push_event(dec_.h, gst_event_new_gap(gap_start, gap_duration)));
  push_frames(3, 2, gap_start + gap_duration);
  std::vector<GstBuffer*> buffers = dec_.pull_all();
  ASSERT_EQ(buffers.size(), 6u);
  GstBuffer* silence = buffers[3];
  EXPECT_EQ(GST_BUFFER_PTS(silence), gap_start);
  EXPECT_EQ(GST_BUFFER_DURATION(silence), gap_duration);
  const std::vector<float> samples = buffer_samples(silence);
  EXPECT_EQ(samples.size(), 240u);  // 10 ms at 24 kHz
  EXPECT_TRUE(std::all_of(samples.begin(), samples.end(), [](float s) { return s == 0.0f; }));
  EXPECT_EQ(GST_BUFFER_PTS(buffers[4]), gap_start + gap_duration);
  EXPECT_EQ(GST_BUFFER_PTS(buffers[5]), gap_start + gap_duration + kFrameTime);
  const std::vector<float> after_gap = buffer_samples(buffers[4]);
  unref_all(buffers);

  // The codes around a gap are not contiguous: the next frame starts a new stream.
  Harnessed fresh("mimidec", {{"model", tiny_model()}});
  gst_harness_set_src_caps_str(fresh.h, dec_sink_caps().c_str());
  ASSERT_EQ(gst_harness_push(fresh.h, codes_buffer(golden().frame(golden().codes_batch, 3), 0)),
            GST_FLOW_OK);
  std::vector<GstBuffer*> fresh_out = fresh.pull_all();
  ASSERT_EQ(fresh_out.size(), 1u);
  EXPECT_EQ(buffer_samples(fresh_out[0]), after_gap);
  unref_all(fresh_out);
}

// A GAP costs bounded time and memory whatever its duration: past 5 s it goes downstream as a
// GAP instead of becoming hours of silence (G_MAXUINT64 used to abort the process).
TEST_F(MimiDec, HugeGapsGoDownstreamAndCostNoTimeOrMemory) {
  set_caps();
  push_frames(0, 2, 0);
  ASSERT_TRUE(reset_peak_rss()) << "cannot reset the peak RSS (/proc/self/clear_refs)";
  const long rss_before = peak_rss_kib();
  const gint64 t0 = g_get_monotonic_time();
  const GstClockTime hour = 3600 * GST_SECOND, after = 2 * kFrameTime + hour;
  ASSERT_TRUE(gst_harness_push_event(dec_.h, gst_event_new_gap(2 * kFrameTime, hour)));
  push_frames(0, 2, after);
  const GstClockTime end = after + 2 * kFrameTime;
  ASSERT_TRUE(gst_harness_push_event(dec_.h, gst_event_new_gap(end, G_MAXUINT64 - end - 1)));
  EXPECT_LT(g_get_monotonic_time() - t0, 2 * G_USEC_PER_SEC);
  EXPECT_LT(peak_rss_kib() - rss_before, 50 * 1024);

  std::vector<GstBuffer*> buffers = dec_.pull_all();
  ASSERT_EQ(buffers.size(), 4u);
  EXPECT_EQ(GST_BUFFER_PTS(buffers[2]), after);
  EXPECT_EQ(GST_BUFFER_PTS(buffers[3]), after + kFrameTime);
  // A new stream after the gap: the same codes decode as at the start.
  EXPECT_EQ(buffer_samples(buffers[2]), buffer_samples(buffers[0]));
  unref_all(buffers);
  const auto gaps = pull_gaps(dec_.h);
  ASSERT_EQ(gaps.size(), 2u);
  EXPECT_EQ(gaps[0], std::make_pair(2 * kFrameTime, hour));
}

TEST_F(MimiDec, AfterAFlushTheOutputIsAFreshDecodersOutput) {
  set_caps();
  push_frames(5, 20);
  EXPECT_EQ(pull_audio().size(), 20u * kFrame);
  flush();
  push_frames(0, kFrames);
  EXPECT_LE(rel_l2(pull_audio(), golden().audio_stream), 1e-5);
}

TEST_F(MimiDec, ADiscontinuityStartsANewStream) {
  set_caps();
  push_frames(5, 20);
  EXPECT_EQ(pull_audio().size(), 20u * kFrame);
  push_frames(0, kFrames, GST_SECOND, /*discont=*/true);
  EXPECT_LE(rel_l2(pull_audio(), golden().audio_stream), 1e-5);
}

TEST_F(MimiDec, CodesAtOrAboveTheCardinalityAreADecodeError) {
  set_caps();
  std::vector<int64_t> codes = golden().frame(golden().codes_batch, 0);
  codes[3] = kCardinality;
  EXPECT_EQ(gst_harness_push(dec_.h, codes_buffer(codes, 0)), GST_FLOW_ERROR);
  EXPECT_TRUE(is_error(pop_error(dec_.bus), GST_STREAM_ERROR, GST_STREAM_ERROR_DECODE,
                       "Invalid Mimi code 64 in codebook 3"));
}

TEST_F(MimiDec, ABufferOfTheWrongSizeIsADecodeError) {
  set_caps();
  const guint8 bytes[15] = {};
  EXPECT_EQ(gst_harness_push(dec_.h, gst_buffer_new_memdup(bytes, sizeof bytes)), GST_FLOW_ERROR);
  EXPECT_TRUE(is_error(pop_error(dec_.bus), GST_STREAM_ERROR, GST_STREAM_ERROR_DECODE,
                       "is 16 bytes, but this buffer has 15"));
}

TEST_F(MimiDec, FewerCodebooksDecodeToo) {
  set_caps(dec_sink_caps(4));
  std::vector<int64_t> codes = golden().frame(golden().codes_batch, 0);
  codes.resize(4);
  ASSERT_EQ(gst_harness_push(dec_.h, codes_buffer(codes, 0)), GST_FLOW_OK);
  EXPECT_EQ(pull_audio().size(), static_cast<size_t>(kFrame));
}

// A headerless file of frames, as mimienc ! filesink writes it, read in arbitrary chunks.
TEST_F(MimiDec, CutsAByteStreamIntoFrames) {
  set_caps(dec_sink_caps(kCodebooks, ",framed=false"));
  std::vector<int64_t> all;
  for (int f = 0; f < kFrames; ++f) {
    const std::vector<int64_t> frame = golden().frame(golden().codes_batch, f);
    all.insert(all.end(), frame.begin(), frame.end());
  }
  GstBuffer* stream = codes_buffer(all);
  const gsize size = gst_buffer_get_size(stream);
  for (gsize offset = 0; offset < size; offset += 100) {
    GstBuffer* chunk = gst_buffer_copy_region(stream, GST_BUFFER_COPY_MEMORY, offset,
                                              std::min<gsize>(100, size - offset));
    ASSERT_EQ(gst_harness_push(dec_.h, chunk), GST_FLOW_OK);
  }
  gst_buffer_unref(stream);
  ASSERT_TRUE(gst_harness_push_event(dec_.h, gst_event_new_eos()));
  std::vector<GstBuffer*> buffers = dec_.pull_all();
  ASSERT_EQ(buffers.size(), static_cast<size_t>(kFrames));
  EXPECT_EQ(GST_BUFFER_PTS(buffers[kFrames - 1]), (kFrames - 1) * kFrameTime);
  std::vector<float> audio;
  for (GstBuffer* b : buffers) {
    const std::vector<float> s = buffer_samples(b);
    audio.insert(audio.end(), s.begin(), s.end());
  }
  unref_all(buffers);
  EXPECT_LE(rel_l2(audio, golden().audio_stream), 1e-5);
}

TEST_F(MimiDec, ConvertsBytePositionsToTime) {
  set_caps(dec_sink_caps(kCodebooks, ",framed=false"));
  gint64 time = 0, bytes = 0;
  ASSERT_TRUE(gst_pad_query_convert(dec_.sinkpad(), GST_FORMAT_BYTES, 160, GST_FORMAT_TIME, &time));
  EXPECT_EQ(time, static_cast<gint64>(10 * kFrameTime));
  ASSERT_TRUE(gst_pad_query_convert(dec_.sinkpad(), GST_FORMAT_TIME, 21 * GST_MSECOND,
                                    GST_FORMAT_BYTES, &bytes));
  EXPECT_EQ(bytes, 160);  // whole frames only
}

}  // namespace
}  // namespace gstmimi::test
