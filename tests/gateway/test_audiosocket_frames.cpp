// The AudioSocket framing on its own: frames split anywhere, the rates of the audio kinds, and
// the headers it refuses before reading their payload.
#include <gtest/gtest.h>

#include "doors/audiosocket_frames.h"

using namespace moshigw::audiosocket;

TEST(AudioSocketFrames, FramesSplitAnywhereComeWhole) {
  const std::string stream = encode(kUuid, std::string(16, '\x7f')) + encode(kAudio, "abcd") +
                             encode(kDtmf, "5") + encode(kHangup);
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    FrameReader reader;
    reader.feed(stream.data(), cut);
    std::vector<Frame> frames;
    Frame f;
    while (reader.next(f)) frames.push_back(f);
    reader.feed(stream.data() + cut, stream.size() - cut);
    while (reader.next(f)) frames.push_back(f);
    ASSERT_EQ(frames.size(), 4u) << cut;
    EXPECT_EQ(frames[1].payload, "abcd");
    EXPECT_EQ(frames[3].kind, kHangup);
    EXPECT_TRUE(reader.error().empty());
  }
}

TEST(AudioSocketFrames, RatesOfTheAudioKinds) {
  EXPECT_EQ(audio_rate(0x10), 8000);
  EXPECT_EQ(audio_rate(0x12), 16000);
  EXPECT_EQ(audio_rate(0x16), 48000);
  EXPECT_EQ(audio_rate(0x17), 0);
  EXPECT_EQ(audio_rate(kUuid), 0);
}

TEST(AudioSocketFrames, BadHeadersAreRefusedBeforeTheirPayload) {
  for (const std::string& header :
       {std::string("\x42\x00\x00", 3), std::string("\x10\xff\xff", 3),
        std::string("\x01\x00\x0f", 3), std::string("\x10\x00\x03", 3)}) {
    FrameReader reader;
    reader.feed(header.data(), header.size());
    Frame f;
    EXPECT_FALSE(reader.next(f));
    EXPECT_FALSE(reader.error().empty()) << static_cast<int>(header[0]);
  }
}

TEST(AudioSocketFrames, UuidText) {
  std::string bytes;
  for (int i = 0; i < 16; ++i) bytes += static_cast<char>(i);
  EXPECT_EQ(uuid_text(bytes), "00010203-0405-0607-0809-0a0b0c0d0e0f");
}
