// WAV reading and writing for the tools: formats, mixing down, and clear errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <fstream>

#include "wav.h"

namespace kyutai::tools {
namespace {

std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "/kyutai_wav_" + std::to_string(getpid()) + "_" + name;
}

TEST(Wav, SixteenBitRoundTripIsWithinOneStep) {
  const std::vector<float> in = {0.f, 0.5f, -0.5f, 0.999f, -1.f, 0.25f};
  const std::string path = temp_path("pcm16.wav");
  write_wav(path, in.data(), in.size(), 24000);
  const Wav wav = read_wav(path);
  EXPECT_EQ(wav.sample_rate, 24000);
  EXPECT_EQ(wav.channels, 1);
  ASSERT_EQ(wav.samples.size(), in.size());
  for (size_t i = 0; i < in.size(); ++i) EXPECT_NEAR(wav.samples[i], in[i], 1.0 / 32767);
}

TEST(Wav, FloatRoundTripIsExact) {
  const std::vector<float> in = {0.1f, -0.2f, 0.3f, 1.5f};
  const std::string path = temp_path("float.wav");
  write_wav(path, in.data(), in.size(), 16000, /*float32=*/true);
  const Wav wav = read_wav(path);
  EXPECT_EQ(wav.sample_rate, 16000);
  EXPECT_EQ(wav.samples, in);
}

TEST(Wav, ClipsOutOfRangeSamples) {
  const std::vector<float> in = {2.f, -3.f};
  const std::string path = temp_path("clip.wav");
  write_wav(path, in.data(), in.size(), 8000);
  const Wav wav = read_wav(path);
  EXPECT_NEAR(wav.samples[0], 1.f, 1e-4);
  EXPECT_NEAR(wav.samples[1], -1.f, 1e-4);
}

// A stereo 24-bit file written by hand, with an extra chunk before the data.
TEST(Wav, ReadsTwentyFourBitStereoAndMixesDown) {
  const std::string path = temp_path("s24.wav");
  std::ofstream out(path, std::ios::binary);
  auto u32 = [&](uint32_t v) {
    for (int i = 0; i < 4; ++i) out.put(char(v >> (8 * i)));
  };
  auto u16 = [&](uint16_t v) {
    out.put(char(v));
    out.put(char(v >> 8));
  };
  auto s24 = [&](int32_t v) {
    for (int i = 0; i < 3; ++i) out.put(char(v >> (8 * i)));
  };
  out.write("RIFF", 4);
  u32(4 + 24 + 14 + 8 + 12);
  out.write("WAVE", 4);
  out.write("fmt ", 4);
  u32(16);
  u16(1);
  u16(2);
  u32(48000);
  u32(48000 * 6);
  u16(6);
  u16(24);
  out.write("LIST", 4);
  u32(5);
  out.write("hello", 5);
  out.put(0);  // odd chunk, padded
  out.write("data", 4);
  u32(12);
  s24(4194304);
  s24(-4194304);  // +0.5, -0.5
  s24(8388607);
  s24(8388607);  // ~1, ~1
  out.close();
  const Wav wav = read_wav(path);
  EXPECT_EQ(wav.channels, 2);
  EXPECT_EQ(wav.sample_rate, 48000);
  const std::vector<float> mono = to_mono(wav);
  ASSERT_EQ(mono.size(), 2u);
  EXPECT_NEAR(mono[0], 0.f, 1e-6);
  EXPECT_NEAR(mono[1], 1.f, 1e-6);
}

TEST(Wav, RejectsOtherFiles) {
  const std::string path = temp_path("junk.wav");
  std::ofstream(path) << "definitely not a wave file";
  EXPECT_THROW(read_wav(path), WavError);
  EXPECT_THROW(read_wav(temp_path("absent.wav")), WavError);
}

}  // namespace
}  // namespace kyutai::tools
