#include "doors/audiosocket_frames.h"

#include <glib.h>

namespace moshigw::audiosocket {

namespace {

// 0x10-0x16, as Asterisk's slin formats: 8, 12, 16, 24, 32, 44.1 and 48 kHz.
constexpr int kRates[] = {8000, 12000, 16000, 24000, 32000, 44100, 48000};

// The longest payload a kind may carry; -1 for a kind the gateway does not know.
long max_payload(uint8_t kind) {
  if (const int rate = audio_rate(kind)) return rate * 2 / 10;  // 100 ms
  switch (kind) {
    case kHangup:
      return 0;
    case kUuid:
      return 16;
    case kDtmf:
      return 1;
    case kError:
      return 256;
    default:
      return -1;
  }
}

}  // namespace

int audio_rate(uint8_t kind) {
  const int index = kind - kAudio;
  return index >= 0 && index < static_cast<int>(G_N_ELEMENTS(kRates)) ? kRates[index] : 0;
}

bool FrameReader::next(Frame& frame) {
  if (!error_.empty() || buffer_.size() < 3) return false;
  const auto kind = static_cast<uint8_t>(buffer_[0]);
  const size_t length = (static_cast<uint8_t>(buffer_[1]) << 8) | static_cast<uint8_t>(buffer_[2]);
  const long max = max_payload(kind);
  g_autofree char* why = nullptr;
  if (max < 0)
    why = g_strdup_printf("unknown frame kind 0x%02x", kind);
  else if (static_cast<long>(length) > max || (kind == kUuid && length != 16) ||
           (audio_rate(kind) && length % 2))
    why = g_strdup_printf("frame of kind 0x%02x with %zu bytes (at most %ld)", kind, length, max);
  if (why) {
    error_ = why;
    return false;
  }
  if (buffer_.size() < 3 + length) return false;
  frame.kind = kind;
  frame.payload = buffer_.substr(3, length);
  buffer_.erase(0, 3 + length);
  return true;
}

std::string encode(uint8_t kind, const std::string& payload) {
  std::string frame(3, '\0');
  frame[0] = static_cast<char>(kind);
  frame[1] = static_cast<char>(payload.size() >> 8);
  frame[2] = static_cast<char>(payload.size() & 0xff);
  return frame + payload;
}

std::string uuid_text(const std::string& bytes) {
  static const char digits[] = "0123456789abcdef";
  std::string text;
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) text += '-';
    text += digits[static_cast<uint8_t>(bytes[i]) >> 4];
    text += digits[static_cast<uint8_t>(bytes[i]) & 15];
  }
  return text;
}

}  // namespace moshigw::audiosocket
