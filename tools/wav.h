// Minimal RIFF/WAVE reading and writing for the command-line tools. Torch-free.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

namespace kyutai::tools {

struct WavError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Wav {
  int sample_rate = 0;
  int channels = 0;
  std::vector<float> samples;  // interleaved, in [-1, 1]
};

// Reads integer PCM (8, 16, 24, 32 bit) and IEEE float (32, 64 bit) files, plain or
// WAVE_FORMAT_EXTENSIBLE. Throws WavError naming the file on anything else.
Wav read_wav(const std::string& path);

// The channel average.
std::vector<float> to_mono(const Wav& wav);

// Writes mono audio as 16-bit PCM (clipped to [-1, 1]) or 32-bit float.
void write_wav(const std::string& path, const float* samples, size_t count, int sample_rate,
               bool float32 = false);

}  // namespace kyutai::tools
