// Ogg Opus both ways for Kyutai's web client: what the gateway sends is one Opus packet per Ogg
// page, OpusHead (beginning of stream, page 0) and OpusTags (page 1) first, and decodes back to
// the signal; what the client sends, one page per message with any input rate in its OpusHead,
// decodes as one stream. The not-linked failure of a bare oggdemux ! opusdec on a 44100 Hz
// OpusHead (GStreamer 1.22) is reproduced, so that the fix is known to be needed.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "ogg_opus.h"

namespace gateway::kyutai {
namespace {

using Page = std::vector<uint8_t>;

// Ogg's CRC-32 (polynomial 0x04c11db7, no reflection, zero start), computed with the CRC field
// zeroed.
uint32_t ogg_crc(const Page& page) {
  uint32_t crc = 0;
  for (size_t i = 0; i < page.size(); ++i) {
    crc ^= static_cast<uint32_t>(i >= 22 && i < 26 ? 0 : page[i]) << 24;
    for (int bit = 0; bit < 8; ++bit) crc = crc & 0x80000000u ? (crc << 1) ^ 0x04c11db7u : crc << 1;
  }
  return crc;
}

uint32_t le32(const uint8_t* p) {
  return p[0] | p[1] << 8 | p[2] << 16 | uint32_t(p[3]) << 24;
}
size_t header_size(const Page& p) {
  return 27 + p[26];
}
uint32_t sequence(const Page& p) {
  return le32(&p[18]);
}
// Packets ending in the page: lacing values below 255 each close one.
int packets(const Page& p) {
  int n = 0;
  for (int i = 0; i < p[26]; ++i) n += p[27 + i] < 255;
  return n;
}

// A byte stream cut into its pages, each checked (capture pattern, size, CRC).
std::vector<Page> split(const std::vector<uint8_t>& bytes) {
  std::vector<Page> pages;
  for (size_t at = 0; at < bytes.size();) {
    EXPECT_EQ(std::string(bytes.begin() + at, bytes.begin() + at + 4), "OggS");
    size_t size = 27 + bytes[at + 26];
    for (int i = 0; i < bytes[at + 26]; ++i) size += bytes[at + 27 + i];
    pages.emplace_back(bytes.begin() + at, bytes.begin() + at + size);
    EXPECT_EQ(ogg_crc(pages.back()), le32(&pages.back()[22]));
    at += size;
  }
  return pages;
}

std::vector<uint8_t> join(const std::vector<std::vector<uint8_t>>& buffers) {
  std::vector<uint8_t> out;
  for (const auto& b : buffers) out.insert(out.end(), b.begin(), b.end());
  return out;
}

// A vowel-like signal: 150 Hz with harmonics, its loudness moving at syllable pace.
std::vector<int16_t> speechlike(double seconds) {
  std::vector<int16_t> s(static_cast<size_t>(seconds * kRate));
  for (size_t i = 0; i < s.size(); ++i) {
    const double t = static_cast<double>(i) / kRate;
    const double voice = std::sin(2 * M_PI * 150 * t) + 0.5 * std::sin(2 * M_PI * 300 * t) +
                         0.25 * std::sin(2 * M_PI * 450 * t);
    s[i] = static_cast<int16_t>(6000 * voice * (0.6 + 0.4 * std::sin(2 * M_PI * 4 * t)));
  }
  return s;
}

double rms(const std::vector<int16_t>& s) {
  double sum = 0;
  for (int16_t v : s) sum += double(v) * v;
  return s.empty() ? 0 : std::sqrt(sum / s.size());
}

// What the client sends: 20 ms packets, several per page (GStreamer's default muxing), with
// the OpusHead's input rate set to `input_rate`.
std::vector<Page> client_pages(const std::vector<int16_t>& pcm, uint32_t input_rate) {
  AppPipeline mux("audio/x-raw, format=S16LE, layout=interleaved, channels=1, rate=24000",
                  "opusenc frame-size=20 ! oggmux", "audio/ogg");
  mux.push(pcm.data(), pcm.size() * 2, 0, gst_util_uint64_scale(pcm.size(), GST_SECOND, kRate));
  std::vector<Page> pages = split(join(mux.finish()));
  Page& head = pages.at(0);
  const size_t rate_at = header_size(head) + 12;  // "OpusHead", version, channels, pre-skip
  for (int i = 0; i < 4; ++i) head[rate_at + i] = static_cast<uint8_t>(input_rate >> (8 * i));
  const uint32_t crc = ogg_crc(head);
  for (int i = 0; i < 4; ++i) head[22 + i] = static_cast<uint8_t>(crc >> (8 * i));
  return pages;
}

class KyutaiOggOpus : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { gst_init(nullptr, nullptr); }
};

// The gateway refuses to open the Kyutai door without the fragments' elements
// (KyutaiChatDoor::open): here all are there, and the one taken out of the registry is named.
TEST(KyutaiOggOpusElements, NamesTheElementsItLacks) {
  gst_init(nullptr, nullptr);
  EXPECT_TRUE(missing_ogg_opus_elements().empty());
  GstRegistry* registry = gst_registry_get();
  GstPluginFeature* parse = gst_registry_lookup_feature(registry, "opusparse");
  ASSERT_NE(parse, nullptr);
  gst_registry_remove_feature(registry, parse);
  EXPECT_EQ(missing_ogg_opus_elements(), std::vector<std::string>{"opusparse"});
  ASSERT_TRUE(gst_registry_add_feature(registry, parse));  // the registry's reference again
  gst_object_unref(parse);                                 // the lookup's
  EXPECT_TRUE(missing_ogg_opus_elements().empty());
}

TEST_F(KyutaiOggOpus, SendsHeadersThenOnePacketPerPage) {
  OggOpusEncoder enc;
  const std::vector<int16_t> pcm = speechlike(1.0);
  for (size_t at = 0; at < pcm.size(); at += 1920)  // 80 ms frames, the last one shorter
    enc.push(&pcm[at], std::min<size_t>(1920, pcm.size() - at));
  std::vector<std::vector<uint8_t>> buffers = enc.take();
  for (auto& b : enc.finish()) buffers.push_back(std::move(b));
  ASSERT_GE(buffers.size(), 27u);
  std::vector<Page> pages;
  for (const auto& b : buffers) {
    const std::vector<Page> in_buffer = split(b);
    ASSERT_EQ(in_buffer.size(), 1u) << "one page per buffer, so one per message";
    pages.push_back(in_buffer[0]);
  }
  EXPECT_EQ(pages[0][5] & 0x02, 0x02) << "beginning of stream";
  EXPECT_EQ(std::string(pages[0].begin() + header_size(pages[0]),
                        pages[0].begin() + header_size(pages[0]) + 8),
            "OpusHead");
  EXPECT_EQ(std::string(pages[1].begin() + header_size(pages[1]),
                        pages[1].begin() + header_size(pages[1]) + 8),
            "OpusTags");
  for (size_t i = 0; i < pages.size(); ++i) {
    EXPECT_EQ(sequence(pages[i]), i);
    if (i >= 2) {
      EXPECT_EQ(packets(pages[i]), 1) << "page " << i;
    }
  }
  // 40 ms packets, as Kyutai's Rust server sends: 25 for a second (20 ms ones would be 50),
  // and up to two more that flush the encoder's look-ahead at the end.
  EXPECT_GE(pages.size() - 2, 25u);
  EXPECT_LE(pages.size() - 2, 27u);

  OggOpusDecoder dec;
  for (const Page& p : pages) dec.push_page(p.data(), p.size());
  const std::vector<int16_t> back = dec.finish();
  EXPECT_NEAR(static_cast<double>(back.size()), static_cast<double>(pcm.size()), 0.05 * kRate);
  EXPECT_GT(rms(back), 0.5 * rms(pcm));
}

TEST_F(KyutaiOggOpus, ABareDemuxerAndDecoderRefuseA44100HzOpusHead) {
  const std::vector<Page> pages = client_pages(speechlike(0.5), 44100);
  AppPipeline bare("audio/ogg", "oggdemux ! opusdec ! audioconvert ! audioresample",
                   "audio/x-raw, format=S16LE, channels=1, rate=24000");
  try {
    for (const Page& p : pages) bare.push(p.data(), p.size());
    bare.finish(2 * GST_SECOND);
    ADD_FAILURE() << "decoded: GStreamer no longer needs opusparse here";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("not-linked"), std::string::npos) << e.what();
  }
}

TEST_F(KyutaiOggOpus, DecodesTheClientsPagesWhateverItsInputRate) {
  for (uint32_t input_rate : {44100u, 48000u, 24000u}) {
    const std::vector<int16_t> pcm = speechlike(1.0);
    const std::vector<Page> pages = client_pages(pcm, input_rate);
    ASSERT_GT(pages.size(), 3u);
    OggOpusDecoder dec;
    std::vector<int16_t> back;
    for (const Page& p : pages) {
      dec.push_page(p.data(), p.size());
      const std::vector<int16_t> some = dec.take();
      back.insert(back.end(), some.begin(), some.end());
    }
    const std::vector<int16_t> rest = dec.finish();
    back.insert(back.end(), rest.begin(), rest.end());
    EXPECT_NEAR(static_cast<double>(back.size()), static_cast<double>(pcm.size()), 0.05 * kRate)
        << input_rate;
    EXPECT_GT(rms(back), 0.5 * rms(pcm)) << input_rate;
  }
}

}  // namespace
}  // namespace gateway::kyutai
