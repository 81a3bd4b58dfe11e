// mimi-codec: Mimi without GStreamer. Encodes a WAV file to codes, decodes codes to a WAV file,
// or does both, whole-signal or frame by frame as a real-time stream would.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kyutai/mimi.h"
#include "kyutai/error.h"
#include "kyutai/hub.h"
#include "kyutai/runtime.h"
#include "kyutai/safetensors.h"
#include "wav.h"

namespace {

using kyutai::Mimi;

const char* const kUsage =
    "usage: mimi-codec encode INPUT.wav OUTPUT.codes [options]\n"
    "       mimi-codec decode INPUT.codes OUTPUT.wav [options]\n"
    "       mimi-codec roundtrip INPUT.wav OUTPUT.wav [options]\n"
    "\n"
    "INPUT.wav must be mono or multi-channel (mixed down) at the model's sample rate.\n"
    "Codes files are safetensors files holding 'codes' (int64, [codebooks, frames]).\n"
    "\n"
    "options:\n"
    "  --model M       Mimi weights: a .safetensors file, a directory, or a Hugging Face\n"
    "                  repo id found in the local cache (required)\n"
    "  --config C      Mimi config.json (default: a Mimi config.json beside the weights,\n"
    "                  else the released Mimi configuration)\n"
    "  --codebooks N   codebooks to encode (default 8, at most the model's)\n"
    "  --streaming     run frame by frame, as a live stream does (default: whole signal)\n"
    "  --threads N     compute threads (default: all cores)\n"
    "  --device D      cpu (default), cuda or cuda:N with a CUDA build of libtorch\n"
    "  --float         write 32-bit float WAV instead of 16-bit PCM\n";

struct Options {
  std::string command, input, output, model, config, device = "cpu";
  int codebooks = kyutai::kDefaultNumCodebooks;
  int threads = 0;
  bool streaming = false, float_wav = false;
};

bool parse(int argc, char** argv, Options& o) {
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    if (a == "--streaming") {
      o.streaming = true;
      continue;
    }
    if (a == "--float") {
      o.float_wav = true;
      continue;
    }
    if (a == "--model" || a == "--config" || a == "--device" || a == "--codebooks" ||
        a == "--threads") {
      const char* v = value();
      if (!v) return false;
      if (a == "--model")
        o.model = v;
      else if (a == "--config")
        o.config = v;
      else if (a == "--device")
        o.device = v;
      else if (a == "--codebooks")
        o.codebooks = std::atoi(v);
      else
        o.threads = std::atoi(v);
      continue;
    }
    if (a.rfind("--", 0) == 0) return false;
    positional.push_back(a);
  }
  if (positional.size() != 3) return false;
  o.command = positional[0];
  o.input = positional[1];
  o.output = positional[2];
  return o.command == "encode" || o.command == "decode" || o.command == "roundtrip";
}

struct Codes {
  int codebooks = 0;
  int64_t frames = 0;
  std::vector<int64_t> data;  // [codebooks][frames]
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

Codes encode(const std::shared_ptr<const Mimi>& mimi, const std::vector<float>& pcm,
             const Options& o) {
  const size_t frame = static_cast<size_t>(mimi->format().frame_size);
  Codes codes{o.codebooks, static_cast<int64_t>((pcm.size() + frame - 1) / frame), {}};
  if (!o.streaming) {
    codes.data = mimi->encode(pcm.data(), pcm.size(), o.codebooks);
    codes.frames = static_cast<int64_t>(codes.data.size()) / o.codebooks;
    return codes;
  }
  kyutai::MimiEncoder encoder(mimi, o.codebooks);
  codes.data.resize(static_cast<size_t>(codes.frames) * o.codebooks);
  std::vector<float> buffer(frame);
  std::vector<int64_t> out(static_cast<size_t>(o.codebooks));
  for (int64_t f = 0; f < codes.frames; ++f) {
    // The last partial frame is padded with zeros, as an encoder element does at end of stream.
    const size_t begin = static_cast<size_t>(f) * frame;
    const size_t n = std::min(frame, pcm.size() - begin);
    std::fill(std::copy_n(pcm.begin() + begin, n, buffer.begin()), buffer.end(), 0.f);
    encoder.encode_frame(buffer.data(), frame, out.data());
    for (int k = 0; k < o.codebooks; ++k) codes.data[k * codes.frames + f] = out[k];
  }
  return codes;
}

std::vector<float> decode(const std::shared_ptr<const Mimi>& mimi, const Codes& codes,
                          const Options& o) {
  if (!o.streaming) return mimi->decode(codes.data.data(), codes.codebooks, codes.frames);
  const size_t frame = static_cast<size_t>(mimi->format().frame_size);
  kyutai::MimiDecoder decoder(mimi);
  std::vector<float> pcm(static_cast<size_t>(codes.frames) * frame);
  std::vector<int64_t> column(static_cast<size_t>(codes.codebooks));
  for (int64_t f = 0; f < codes.frames; ++f) {
    for (int k = 0; k < codes.codebooks; ++k) column[k] = codes.data[k * codes.frames + f];
    decoder.decode_frame(column.data(), codes.codebooks, pcm.data() + f * frame);
  }
  return pcm;
}

void write_codes(const std::string& path, const Codes& codes, const Mimi& mimi) {
  const kyutai::MimiFormat& fmt = mimi.format();
  kyutai::write_safetensors(
      path, {{"codes", kyutai::DType::I64, {codes.codebooks, codes.frames}, codes.data.data()}},
      {{"format", "mimi-codes"},
       {"sample_rate", std::to_string(fmt.sample_rate)},
       {"frame_size", std::to_string(fmt.frame_size)},
       {"cardinality", std::to_string(fmt.cardinality)}});
}

Codes read_codes(const std::string& path, const Mimi& mimi) {
  const auto file = kyutai::SafetensorsFile::open(path);
  const kyutai::TensorInfo* info = file->find("codes");
  if (!info || info->dtype != kyutai::DType::I64 || info->shape.size() != 2)
    throw kyutai::Error(path + ": no int64 'codes' tensor of shape [codebooks, frames]");
  const auto& meta = file->header().metadata;
  auto it = meta.find("frame_size");
  if (it != meta.end() && std::stoi(it->second) != mimi.format().frame_size)
    throw kyutai::Error(path + ": codes were made with a frame size of " + it->second +
                        " samples; this model's is " + std::to_string(mimi.format().frame_size));
  Codes codes{static_cast<int>(info->shape[0]), info->shape[1], {}};
  const auto* begin = reinterpret_cast<const int64_t*>(file->data(*info));
  codes.data.assign(begin, begin + codes.codebooks * codes.frames);
  return codes;
}

std::vector<float> read_audio(const std::string& path, const Mimi& mimi) {
  const kyutai::tools::Wav wav = kyutai::tools::read_wav(path);
  if (wav.sample_rate != mimi.format().sample_rate)
    throw kyutai::Error(
        path + ": sample rate is " + std::to_string(wav.sample_rate) + " Hz; this Mimi needs " +
        std::to_string(mimi.format().sample_rate) +
        " Hz (resample first, for example with gst-launch-1.0 ... ! audioresample)");
  return kyutai::tools::to_mono(wav);
}

int run(const Options& o) {
  if (o.model.empty()) throw kyutai::Error("--model is required");
  kyutai::set_num_threads(o.threads);
  kyutai::MimiFiles files = kyutai::locate_mimi(o.model);
  if (!o.config.empty()) files.config = o.config;
  const auto mimi = Mimi::load(files.weights, files.config, o.device);
  const kyutai::MimiFormat& fmt = mimi->format();
  std::printf("model: %s (%s config), %d Hz, %d samples per frame, %d codebooks of %d\n",
              files.weights.c_str(), files.config.empty() ? "released" : files.config.c_str(),
              fmt.sample_rate, fmt.frame_size, fmt.total_codebooks, fmt.cardinality);
  const auto t0 = std::chrono::steady_clock::now();
  Codes codes;
  if (o.command == "decode") {
    codes = read_codes(o.input, *mimi);
  } else {
    codes = encode(mimi, read_audio(o.input, *mimi), o);
    const double kbps = codes.codebooks * std::log2(fmt.cardinality) * fmt.frame_rate / 1000;
    std::printf("encoded %lld frames x %d codebooks (%.2f kbps)\n",
                static_cast<long long>(codes.frames), codes.codebooks, kbps);
  }
  if (o.command == "encode") {
    write_codes(o.output, codes, *mimi);
  } else {
    const std::vector<float> pcm = decode(mimi, codes, o);
    kyutai::tools::write_wav(o.output, pcm.data(), pcm.size(), fmt.sample_rate, o.float_wav);
    std::printf("decoded %zu samples\n", pcm.size());
  }
  const double audio_s = static_cast<double>(codes.frames) / fmt.frame_rate;
  const double took = seconds_since(t0);
  std::printf("%s: %.2f s of audio in %.2f s (%.1fx real time, %s, %d threads) -> %s\n",
              o.command.c_str(), audio_s, took, took > 0 ? audio_s / took : 0.0,
              o.streaming ? "streaming" : "whole signal", kyutai::num_threads(), o.output.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse(argc, argv, o)) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mimi-codec: %s\n", e.what());
    return 1;
  }
}
