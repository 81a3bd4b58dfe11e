// The sample pipelines in pipelines/, run as a user runs them, with the small model and file or
// test sources (no sound card, no network).
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "gst_test_util.h"
#include "wav.h"

namespace gstmimi::test {
namespace {

namespace fs = std::filesystem;
using kyutai::tools::read_wav;
using kyutai::tools::Wav;

double rel_l2(const Wav& a, const Wav& b) {
  return test::rel_l2(a.samples, b.samples);
}

const std::string kSpeech = data_path("speechlike.wav");  // 3 s, 24 kHz, mono
constexpr size_t kSpeechSamples = 72000;

TEST(Pipelines, WavRoundTripMatchesTheLibrarysStreamingRoundTrip) {
  TempDir dir;
  const std::string out = dir.path("out.wav");
  const Outcome r = run("pipelines/wav-roundtrip.sh " + quote(kSpeech) + " " + quote(out), dir);
  ASSERT_EQ(r.status, 0) << r.output;
  const Wav wav = read_wav(out);
  EXPECT_EQ(wav.sample_rate, kRate);
  EXPECT_EQ(wav.channels, 1);
  EXPECT_EQ(wav.samples.size(), kSpeechSamples);

  // mimi-codec runs the same streaming path without GStreamer; only the final conversion to
  // 16 bits (audioconvert dithers) differs.
  const std::string reference = dir.path("reference.wav");
  const Outcome tool =
      run(std::string(build_dir()) + "/tools/mimi-codec roundtrip " + quote(kSpeech) + " " +
              quote(reference) + " --streaming --model " + quote(tiny_model()),
          dir);
  ASSERT_EQ(tool.status, 0) << tool.output;
  EXPECT_LE(rel_l2(wav, read_wav(reference)), 1e-3);
}

// With 1920-sample frames the 72000 samples are 37.5 frames: the padding of the last one is
// marked by mimienc and dropped by mimidec, so the WAV comes back exactly as long, not 40 ms
// longer.
TEST(Pipelines, WavRoundTripWithAPartialLastFrameKeepsTheLength) {
  TempDir dir;
  const std::string out = dir.path("out.wav");
  const Outcome r = run("MODEL=" + quote(source_root() + "/models/moshi-tiny") +
                            " pipelines/wav-roundtrip.sh " + quote(kSpeech) + " " + quote(out),
                        dir);
  ASSERT_EQ(r.status, 0) << r.output;
  static_assert(kSpeechSamples % 1920 != 0);
  EXPECT_EQ(read_wav(out).samples.size(), kSpeechSamples);
}

TEST(Pipelines, CodesStoredInAFileDecodeLaterToTheSameAudio) {
  TempDir dir;
  const std::string codes = dir.path("speech.mimi"), later = dir.path("later.wav"),
                    direct = dir.path("direct.wav");
  Outcome r = run("pipelines/codes-file.sh encode " + quote(kSpeech) + " " + quote(codes), dir);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(fs::file_size(codes), kSpeechSamples / kFrame * kCodebooks * 2);
  r = run("pipelines/codes-file.sh decode " + quote(codes) + " " + quote(later), dir);
  ASSERT_EQ(r.status, 0) << r.output;
  r = run("pipelines/wav-roundtrip.sh " + quote(kSpeech) + " " + quote(direct), dir);
  ASSERT_EQ(r.status, 0) << r.output;
  const Wav decoded = read_wav(later);
  EXPECT_EQ(decoded.sample_rate, kRate);
  EXPECT_EQ(decoded.samples.size(), kSpeechSamples);
  EXPECT_LE(rel_l2(decoded, read_wav(direct)), 1e-3);
}

// A stored codes file in a pipeline built in-process: its duration is known at once.
TEST(Pipelines, AStoredCodesFileHasAKnownDuration) {
  TempDir dir;
  const std::string codes = dir.path("speech.mimi");
  const Outcome r =
      run("pipelines/codes-file.sh encode " + quote(kSpeech) + " " + quote(codes), dir);
  ASSERT_EQ(r.status, 0) << r.output;
  const std::string description =
      "filesrc location=" + codes +
      " ! audio/x-mimi,codebooks=8,framed=false ! mimidec model=" + tiny_model() + " ! fakesink";
  GError* error = nullptr;
  GstElement* pipeline = gst_parse_launch(description.c_str(), &error);
  ASSERT_NE(pipeline, nullptr) << error->message;
  gst_element_set_state(pipeline, GST_STATE_PAUSED);
  ASSERT_EQ(gst_element_get_state(pipeline, nullptr, nullptr, 10 * GST_SECOND),
            GST_STATE_CHANGE_SUCCESS);
  gint64 duration = 0;
  EXPECT_TRUE(gst_element_query_duration(pipeline, GST_FORMAT_TIME, &duration));
  EXPECT_EQ(duration, static_cast<gint64>(3 * GST_SECOND));
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(pipeline);
}

TEST(Pipelines, LiveMicrophoneToSpeakersRunsInRealTime) {
  TempDir dir;
  const std::string out = dir.path("live.wav");
  // 40 buffers of 480 samples at 48 kHz (resampled to 24 kHz), played against the clock and
  // recorded.
  const std::string src =
      "audiotestsrc is-live=true num-buffers=40 samplesperbuffer=480 ! audio/x-raw,rate=48000";
  const std::string sink =
      "tee name=t ! queue ! fakesink sync=true t. ! queue ! wavenc ! filesink location=" + out;
  const Outcome r =
      run("SRC=" + quote(src) + " SINK=" + quote(sink) + " pipelines/live-mic.sh", dir);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("Got EOS"), std::string::npos) << r.output;
  const Wav wav = read_wav(out);
  const double seconds = static_cast<double>(wav.samples.size()) / wav.sample_rate;
  EXPECT_NEAR(seconds, 40 * 480 / 48000.0, 0.005);
}

TEST(Pipelines, AMissingModelStopsWithAClearMessage) {
  TempDir dir;
  const Outcome r = run("MODEL=" + quote(dir.path("absent")) + " pipelines/wav-roundtrip.sh " +
                            quote(kSpeech) + " " + quote(dir.path("out.wav")),
                        dir);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("Mimi model '" + dir.path("absent") + "' not found."), std::string::npos)
      << r.output;
}

}  // namespace
}  // namespace gstmimi::test
