#include "protocol.h"

#include <charconv>
#include <climits>
#include <cmath>

namespace gateway::kyutai {

namespace {

constexpr uint8_t kLastKind = static_cast<uint8_t>(Kind::colored_text);
constexpr uint8_t kLastControl = 3;  // restart
// The library's bound on the penalty's history (kyutai::kMaxRepetitionPenaltyContext) and
// moshilm's range for the penalty: a value the element would refuse is refused here first.
constexpr int kMaxPenaltyContext = 4096;
constexpr double kMinPenalty = 0.01, kMaxPenalty = 100.0;
constexpr double kMaxTemperature = 100.0;  // moshilm's range
constexpr double kMaxPadMult = 100.0;      // exp(100) already saturates a float

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] != '%') {
      out += s[i];
    } else {
      const int hi = i + 2 < s.size() ? hex_digit(s[i + 1]) : -1;
      const int lo = i + 2 < s.size() ? hex_digit(s[i + 2]) : -1;
      if (hi < 0 || lo < 0)
        throw ProtocolError("malformed %-escape in the query string: " + std::string(s));
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    }
  }
  return out;
}

[[noreturn]] void bad_value(const std::string& key, const std::string& value,
                            const std::string& expected) {
  throw ProtocolError("query parameter " + key + "=" + value + ": expected " + expected);
}

// The whole string as a number of type T, or nothing.
template <typename T>
std::optional<T> number(const std::string& s) {
  T v{};
  const char* end = s.data() + s.size();
  const auto [ptr, ec] = std::from_chars(s.data(), end, v);
  if (ec != std::errc() || ptr != end || s.empty()) return std::nullopt;
  return v;
}

std::optional<double> real(const std::map<std::string, std::string>& q, const std::string& key,
                           double min, double max) {
  const auto it = q.find(key);
  if (it == q.end()) return std::nullopt;
  const std::optional<double> v = number<double>(it->second);
  if (!v || !std::isfinite(*v) || *v < min || *v > max)
    bad_value(key, it->second,
              "a number in [" + std::to_string(min) + ", " + std::to_string(max) + "]");
  return v;
}

std::optional<int> integer(const std::map<std::string, std::string>& q, const std::string& key,
                           int max) {
  const auto it = q.find(key);
  if (it == q.end()) return std::nullopt;
  const std::optional<int> v = number<int>(it->second);
  if (!v || *v < 0 || *v > max)
    bad_value(key, it->second, "an integer in [0, " + std::to_string(max) + "]");
  return v;
}

std::optional<uint64_t> seed(const std::map<std::string, std::string>& q, const std::string& key) {
  const auto it = q.find(key);
  if (it == q.end()) return std::nullopt;
  const std::optional<uint64_t> v = number<uint64_t>(it->second);
  if (!v) bad_value(key, it->second, "an unsigned 64-bit integer");
  return v;
}

}  // namespace

const char* kind_name(Kind kind) {
  static const char* const names[] = {"handshake", "audio", "text", "control",
                                      "metadata",  "error", "ping", "colored text"};
  const auto i = static_cast<uint8_t>(kind);
  return i <= kLastKind ? names[i] : "unknown";
}

Message parse(const uint8_t* data, size_t size, size_t max_bytes) {
  if (size == 0) throw ProtocolError("empty message: every message starts with a kind byte");
  if (size > max_bytes)
    throw ProtocolError("message of " + std::to_string(size) + " bytes, more than the " +
                        std::to_string(max_bytes) + " allowed");
  if (data[0] > kLastKind)
    throw ProtocolError("unknown message kind " + std::to_string(data[0]) + " (known: 0 to " +
                        std::to_string(kLastKind) + ")");
  Message m;
  m.kind = static_cast<Kind>(data[0]);
  m.payload.assign(data + 1, data + size);
  if (m.kind == Kind::control && (m.payload.size() != 1 || m.payload[0] > kLastControl))
    throw ProtocolError("a control message carries one byte in [0, 3]");
  if (m.kind == Kind::colored_text && m.payload.empty())
    throw ProtocolError("a coloured text message starts with its colour byte");
  return m;
}

std::vector<uint8_t> serialize(Kind kind, const uint8_t* payload, size_t size) {
  std::vector<uint8_t> out;
  out.reserve(size + 1);
  out.push_back(static_cast<uint8_t>(kind));
  out.insert(out.end(), payload, payload + size);
  return out;
}

std::vector<uint8_t> serialize(Kind kind, std::string_view payload) {
  return serialize(kind, reinterpret_cast<const uint8_t*>(payload.data()), payload.size());
}

std::vector<uint8_t> handshake() {
  const uint8_t versions[8] = {};  // protocol 0, model 0
  return serialize(Kind::handshake, versions, sizeof versions);
}

std::vector<uint8_t> colored_text(uint8_t color, std::string_view text) {
  std::vector<uint8_t> out = serialize(Kind::colored_text, &color, 1);
  out.insert(out.end(), text.begin(), text.end());
  return out;
}

std::map<std::string, std::string> decode_query(std::string_view query) {
  std::map<std::string, std::string> out;
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    const size_t eq = pair.find('=');
    const std::string key = percent_decode(pair.substr(0, eq));
    out[key] = eq == std::string_view::npos ? "" : percent_decode(pair.substr(eq + 1));
  }
  return out;
}

SessionParams parse_session(const std::map<std::string, std::string>& q) {
  SessionParams p;
  p.text_temperature = real(q, "text_temperature", 0.0, kMaxTemperature);
  p.audio_temperature = real(q, "audio_temperature", 0.0, kMaxTemperature);
  p.text_topk = integer(q, "text_topk", INT_MAX);
  p.audio_topk = integer(q, "audio_topk", INT_MAX);
  p.pad_mult = real(q, "pad_mult", -kMaxPadMult, kMaxPadMult);
  p.text_seed = seed(q, "text_seed");
  p.audio_seed = seed(q, "audio_seed");
  p.repetition_penalty_context = integer(q, "repetition_penalty_context", kMaxPenaltyContext);
  p.repetition_penalty = real(q, "repetition_penalty", kMinPenalty, kMaxPenalty);
  return p;
}

}  // namespace gateway::kyutai
