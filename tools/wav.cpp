#include "wav.h"

#include "kyutai/atomic_file.h"
#include "kyutai/error.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>

namespace kyutai::tools {

namespace {

constexpr uint16_t kFormatPcm = 1, kFormatFloat = 3, kFormatExtensible = 0xfffe;

uint32_t le32(const uint8_t* p) {
  return p[0] | p[1] << 8 | p[2] << 16 | uint32_t(p[3]) << 24;
}
uint16_t le16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | p[1] << 8);
}

float sample_at(const uint8_t* p, uint16_t format, int bits) {
  if (format == kFormatFloat) {
    if (bits == 32) {
      float f;
      std::memcpy(&f, p, 4);
      return f;
    }
    double d;
    std::memcpy(&d, p, 8);
    return static_cast<float>(d);
  }
  switch (bits) {
    case 8:
      return (p[0] - 128) / 128.f;
    case 16:
      return static_cast<int16_t>(le16(p)) / 32768.f;
    case 24: {
      int32_t v = p[0] | p[1] << 8 | p[2] << 16;
      if (v & 0x800000) v -= 0x1000000;
      return v / 8388608.f;
    }
    default:
      return static_cast<int32_t>(le32(p)) / 2147483648.f;
  }
}

struct Format {
  uint16_t tag = 0;
  int channels = 0, rate = 0, bits = 0;
};

Format parse_fmt(const uint8_t* p, uint32_t size, const std::string& path) {
  if (size < 16) throw WavError(path + ": fmt chunk too short");
  Format f{le16(p), le16(p + 2), static_cast<int>(le32(p + 4)), le16(p + 14)};
  if (f.tag == kFormatExtensible) {
    if (size < 26) throw WavError(path + ": extensible fmt chunk too short");
    f.tag = le16(p + 24);  // first two bytes of the subformat GUID
  }
  const bool pcm =
      f.tag == kFormatPcm && (f.bits == 8 || f.bits == 16 || f.bits == 24 || f.bits == 32);
  const bool flt = f.tag == kFormatFloat && (f.bits == 32 || f.bits == 64);
  if (!pcm && !flt)
    throw WavError(path + ": unsupported sample format (tag " + std::to_string(f.tag) + ", " +
                   std::to_string(f.bits) + " bits); use integer PCM or float");
  if (f.channels <= 0 || f.rate <= 0) throw WavError(path + ": bad channel count or sample rate");
  return f;
}

void put32(AtomicFile& out, uint32_t v) {
  uint8_t b[4];
  for (int i = 0; i < 4; ++i) b[i] = static_cast<uint8_t>(v >> (8 * i));
  out.write(b, 4);
}
void put16(AtomicFile& out, uint16_t v) {
  const uint8_t b[2] = {static_cast<uint8_t>(v), static_cast<uint8_t>(v >> 8)};
  out.write(b, 2);
}

// Into a new file renamed into place (kyutai/atomic_file.h says why).
void write_wav_atomically(const std::string& path, const float* samples, size_t count,
                          int sample_rate, bool float32) {
  AtomicFile out(path);
  const uint16_t bits = float32 ? 32 : 16;
  const uint32_t data_size = static_cast<uint32_t>(count * bits / 8);
  out.write("RIFF", 4);
  put32(out, 36 + data_size);
  out.write("WAVEfmt ", 8);
  put32(out, 16);
  put16(out, float32 ? kFormatFloat : kFormatPcm);
  put16(out, 1);
  put32(out, static_cast<uint32_t>(sample_rate));
  put32(out, static_cast<uint32_t>(sample_rate) * bits / 8);
  put16(out, bits / 8);
  put16(out, bits);
  out.write("data", 4);
  put32(out, data_size);
  for (size_t i = 0; i < count; ++i) {
    if (float32) {
      out.write(&samples[i], 4);
    } else {
      // The same scale as reading, so a 16-bit round trip is within half a step.
      const long v = std::clamp(std::lrint(samples[i] * 32768.f), -32768L, 32767L);
      put16(out, static_cast<uint16_t>(static_cast<int16_t>(v)));
    }
  }
  out.commit();
}

}  // namespace

Wav read_wav(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw WavError(path + ": cannot open");
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                   std::istreambuf_iterator<char>());
  if (bytes.size() < 12 || std::memcmp(bytes.data(), "RIFF", 4) ||
      std::memcmp(bytes.data() + 8, "WAVE", 4))
    throw WavError(path + ": not a RIFF/WAVE file");
  Format fmt;
  const uint8_t* data = nullptr;
  size_t data_size = 0;
  for (size_t pos = 12; pos + 8 <= bytes.size();) {
    const uint32_t size = le32(&bytes[pos + 4]);
    const size_t body = pos + 8, avail = bytes.size() - body;
    if (!std::memcmp(&bytes[pos], "fmt ", 4))
      fmt = parse_fmt(&bytes[body], std::min<size_t>(size, avail), path);
    if (!std::memcmp(&bytes[pos], "data", 4)) {
      data = &bytes[body];
      data_size = std::min<size_t>(size, avail);  // tolerate a truncated last chunk
    }
    pos = body + size + (size & 1);
  }
  if (!fmt.tag) throw WavError(path + ": no fmt chunk");
  if (!data) throw WavError(path + ": no data chunk");
  Wav wav{fmt.rate, fmt.channels, {}};
  const size_t width = static_cast<size_t>(fmt.bits / 8);
  const size_t count = data_size / width / fmt.channels * fmt.channels;
  wav.samples.resize(count);
  for (size_t i = 0; i < count; ++i)
    wav.samples[i] = sample_at(data + i * width, fmt.tag, fmt.bits);
  return wav;
}

std::vector<float> to_mono(const Wav& wav) {
  if (wav.channels == 1) return wav.samples;
  std::vector<float> mono(wav.samples.size() / wav.channels);
  for (size_t i = 0; i < mono.size(); ++i) {
    float sum = 0;
    for (int c = 0; c < wav.channels; ++c) sum += wav.samples[i * wav.channels + c];
    mono[i] = sum / wav.channels;
  }
  return mono;
}

void write_wav(const std::string& path, const float* samples, size_t count, int sample_rate,
               bool float32) {
  try {
    write_wav_atomically(path, samples, count, sample_rate, float32);
  } catch (const kyutai::Error& e) {
    throw WavError(e.what());
  }
}

}  // namespace kyutai::tools
