// Kyutai's web-client protocol (/api/chat), as its servers speak it (moshi rust/protocol.md,
// moshi-backend stream_both.rs, the client's protocol/encoder.ts): every websocket message is
// binary and starts with a kind byte. This file only frames and checks messages and the
// session's query string; it knows nothing of sockets or pipelines.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace gateway::kyutai {

// A message or a query string that breaks the protocol; what() says what is wrong.
class ProtocolError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The kind byte. The client throws on any other value, so nothing else is ever sent.
enum class Kind : uint8_t {
  handshake = 0,     // the server speaks first; the client records nothing before it
  audio = 1,         // one Ogg page of Opus, 24 kHz mono
  text = 2,          // UTF-8 piece of Moshi's inner monologue
  control = 3,       // one byte: start 0, end turn 1, pause 2, restart 3
  metadata = 4,      // UTF-8 JSON
  error = 5,         // UTF-8 description
  ping = 6,          // no payload
  colored_text = 7,  // one colour byte, then UTF-8 text
};

const char* kind_name(Kind kind);

// No message of this protocol needs more: the client's pages carry at most two 20 ms Opus
// packets. A larger one is refused rather than buffered.
constexpr size_t kMaxMessageBytes = 64 * 1024;
// What a client may send without finishing a message (its fragments, each under
// kMaxMessageBytes, are assembled by libsoup): more is refused as a message over the bound.
constexpr size_t kMaxUnfinishedBytes = 4 * kMaxMessageBytes;

struct Message {
  Kind kind = Kind::ping;
  std::vector<uint8_t> payload;  // everything after the kind byte
};

// Checks one websocket message: not empty, at most `max_bytes`, a known kind, and for
// control and coloured text the byte they need. Throws ProtocolError.
Message parse(const uint8_t* data, size_t size, size_t max_bytes = kMaxMessageBytes);

// The kind byte followed by the payload.
std::vector<uint8_t> serialize(Kind kind, const uint8_t* payload, size_t size);
std::vector<uint8_t> serialize(Kind kind, std::string_view payload);
// The handshake as Kyutai's Rust server sends it: protocol version and model version, two
// little-endian u32, both 0. (The Python server sends the kind byte alone; the client reads
// neither.)
std::vector<uint8_t> handshake();
std::vector<uint8_t> colored_text(uint8_t color, std::string_view text);

// The sampling settings the client puts in the query string of /api/chat. A field is absent
// when the client did not send it; the server's defaults apply then.
struct SessionParams {
  std::optional<double> text_temperature, audio_temperature;
  std::optional<int> text_topk, audio_topk;
  std::optional<double> pad_mult;
  std::optional<uint64_t> text_seed, audio_seed;
  // Kyutai's Rust server applies the penalty only when both are given; so does this.
  std::optional<int> repetition_penalty_context;
  std::optional<double> repetition_penalty;
  bool has_repetition_penalty() const { return repetition_penalty_context && repetition_penalty; }
};

// Decodes an application/x-www-form-urlencoded query ("a=1&b=%20x", '+' for a space).
// Throws ProtocolError on a malformed escape.
std::map<std::string, std::string> decode_query(std::string_view query);

// Reads and checks the settings (keys the client sends for other servers, such as email or
// image_url, are ignored). Throws ProtocolError naming the key and the accepted range.
SessionParams parse_session(const std::map<std::string, std::string>& query);

}  // namespace gateway::kyutai
