// Kyutai's web-client protocol: message kinds, framing, refusals, and the session's query string.
#include <gtest/gtest.h>

#include "protocol.h"

namespace gateway::kyutai {
namespace {

Message parse_bytes(std::vector<uint8_t> bytes, size_t max = kMaxMessageBytes) {
  return parse(bytes.data(), bytes.size(), max);
}

TEST(KyutaiProtocol, ParsesEveryKindTheClientKnows) {
  for (uint8_t k = 0; k <= 7; ++k) {
    std::vector<uint8_t> bytes = {k};
    if (k == 3 || k == 7) bytes.push_back(1);
    const Message m = parse_bytes(bytes);
    EXPECT_EQ(static_cast<uint8_t>(m.kind), k);
    EXPECT_STRNE(kind_name(m.kind), "unknown");
  }
  const Message audio = parse_bytes({1, 'O', 'g', 'g', 'S'});
  EXPECT_EQ(audio.kind, Kind::audio);
  EXPECT_EQ(audio.payload, (std::vector<uint8_t>{'O', 'g', 'g', 'S'}));
}

TEST(KyutaiProtocol, RefusesEmptyUnknownOversizedAndMalformedMessages) {
  EXPECT_THROW(parse(nullptr, 0), ProtocolError);
  EXPECT_THROW(parse_bytes({8}), ProtocolError);
  EXPECT_THROW(parse_bytes({255, 1}), ProtocolError);
  EXPECT_THROW(parse_bytes(std::vector<uint8_t>(kMaxMessageBytes + 1, 1)), ProtocolError);
  EXPECT_NO_THROW(parse_bytes(std::vector<uint8_t>(kMaxMessageBytes, 1)));
  EXPECT_THROW(parse_bytes({1, 2, 3}, 2), ProtocolError);
  EXPECT_THROW(parse_bytes({3}), ProtocolError);        // control without its byte
  EXPECT_THROW(parse_bytes({3, 4}), ProtocolError);     // no such control
  EXPECT_THROW(parse_bytes({3, 0, 0}), ProtocolError);  // one byte only
  EXPECT_THROW(parse_bytes({7}), ProtocolError);        // coloured text without its colour
  try {
    parse_bytes({9});
    FAIL();
  } catch (const ProtocolError& e) {
    EXPECT_NE(std::string(e.what()).find("unknown message kind 9"), std::string::npos);
  }
}

TEST(KyutaiProtocol, SerializesAsKyutaisServersDo) {
  EXPECT_EQ(handshake(), (std::vector<uint8_t>{0, 0, 0, 0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(serialize(Kind::text, "hé"), (std::vector<uint8_t>{2, 'h', 0xc3, 0xa9}));
  EXPECT_EQ(serialize(Kind::error, "full"), (std::vector<uint8_t>{5, 'f', 'u', 'l', 'l'}));
  EXPECT_EQ(serialize(Kind::ping, ""), (std::vector<uint8_t>{6}));
  EXPECT_EQ(colored_text(2, "a"), (std::vector<uint8_t>{7, 2, 'a'}));
  const std::vector<uint8_t> page = {'O', 'g', 'g', 'S'};
  const std::vector<uint8_t> audio = serialize(Kind::audio, page.data(), page.size());
  EXPECT_EQ(parse(audio.data(), audio.size()).payload, page);
}

TEST(KyutaiProtocol, DecodesTheQueryString) {
  const auto q = decode_query("a=1&b=x%20y+z&&c&d=%C3%A9&e=");
  EXPECT_EQ(q.at("a"), "1");
  EXPECT_EQ(q.at("b"), "x y z");
  EXPECT_EQ(q.at("c"), "");
  EXPECT_EQ(q.at("d"), "\xc3\xa9");
  EXPECT_EQ(q.at("e"), "");
  EXPECT_THROW(decode_query("a=%2"), ProtocolError);
  EXPECT_THROW(decode_query("a=%zz"), ProtocolError);
}

TEST(KyutaiProtocol, ReadsTheClientsSettings) {
  // What Kyutai's client sends with its defaults, plus keys meant for other servers.
  const SessionParams p = parse_session(decode_query(
      "text_temperature=0.7&text_topk=25&audio_temperature=0.8&audio_topk=250&pad_mult=0"
      "&text_seed=123456&audio_seed=18446744073709551615&repetition_penalty_context=64"
      "&repetition_penalty=1&email=a%40b&image_url=x"));
  EXPECT_EQ(*p.text_temperature, 0.7);
  EXPECT_EQ(*p.text_topk, 25);
  EXPECT_EQ(*p.audio_temperature, 0.8);
  EXPECT_EQ(*p.audio_topk, 250);
  EXPECT_EQ(*p.pad_mult, 0.0);
  EXPECT_EQ(*p.text_seed, 123456u);
  EXPECT_EQ(*p.audio_seed, UINT64_MAX);
  EXPECT_EQ(*p.repetition_penalty_context, 64);
  EXPECT_EQ(*p.repetition_penalty, 1.0);
  EXPECT_TRUE(p.has_repetition_penalty());
  const SessionParams none = parse_session({});
  EXPECT_FALSE(none.text_temperature || none.text_seed || none.has_repetition_penalty());
  EXPECT_FALSE(parse_session({{"repetition_penalty", "1.5"}}).has_repetition_penalty());
}

TEST(KyutaiProtocol, RefusesBadSettingsNamingTheKey) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"text_temperature", "-0.1"},
      {"text_temperature", "hot"},
      {"audio_temperature", "nan"},
      {"audio_temperature", "inf"},
      {"text_topk", "-1"},
      {"text_topk", "2.5"},
      {"audio_topk", "99999999999"},
      {"pad_mult", "1e9"},
      {"text_seed", "-1"},
      {"audio_seed", "1x"},
      {"repetition_penalty", "0"},
      {"repetition_penalty", "101"},
      {"repetition_penalty_context", "4097"},
      {"repetition_penalty_context", ""},
  };
  for (const auto& [key, value] : bad) {
    try {
      parse_session({{key, value}});
      ADD_FAILURE() << key << "=" << value << " was accepted";
    } catch (const ProtocolError& e) {
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace gateway::kyutai
