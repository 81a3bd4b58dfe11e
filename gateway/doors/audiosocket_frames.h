// Asterisk's AudioSocket framing (the AudioSocket() dialplan application and channel driver):
// a 1-byte kind, a 2-byte big-endian payload length, the payload. Written from the published
// protocol description (docs.asterisk.org, "AudioSocket"); see docs/GATEWAY.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace moshigw::audiosocket {

enum Kind : uint8_t {
  kHangup = 0x00,
  kUuid = 0x01,   // 16 bytes, the call's UUID, first
  kDtmf = 0x03,   // 1 ASCII digit
  kAudio = 0x10,  // signed 16-bit little-endian mono PCM, 8 kHz; 0x11-0x16 other rates
  kError = 0xff,
};

// The sample rate of an audio kind (0x10: 8000 ... 0x16: 48000), 0 for any other kind.
int audio_rate(uint8_t kind);

// The gateway's error codes, the payload of the kError frames it sends before hanging up.
enum ErrorCode : uint8_t {
  kBusy = 0x10,       // max-calls calls in progress
  kShutdown = 0x11,   // the gateway is stopping
  kProtocol = 0x12,   // a malformed, oversized or unexpected frame
  kTimeout = 0x13,    // no UUID, or no audio, for rtp-timeout seconds
  kMediaError = 0x14, // the call's pipeline failed
};

struct Frame {
  uint8_t kind = 0;
  std::string payload;
};

// Frames from a byte stream as it arrives. A header that announces a kind it does not know, or
// a payload longer than its kind allows (audio: 100 ms), sets error() before its payload is
// read, so a bad length never makes it buffer 64 KiB.
class FrameReader {
 public:
  void feed(const char* data, size_t size) { buffer_.append(data, size); }
  // The next whole frame; false while none has arrived, or after an error.
  bool next(Frame& frame);
  const std::string& error() const { return error_; }

 private:
  std::string buffer_;
  std::string error_;
};

std::string encode(uint8_t kind, const std::string& payload = "");
// "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" of 16 bytes.
std::string uuid_text(const std::string& bytes);

}  // namespace moshigw::audiosocket
