// Streaming Mimi benchmark on random weights: median milliseconds per frame for encode and
// decode, and on the CPU the floor: a streaming frame reads every weight of the model once
// (encoder and decoder), so it cannot take less than the model's bytes at the read bandwidth,
// measured before and after the frames as lm-bench does. The last line is machine-readable:
//   mimi encode_ms=<x> decode_ms=<y> threads=<n> device=<d> batch=<b> [floor_ms=<f> gbps=<g>
//   frame_over_floor=<r>]
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench_util.h"
#include "kyutai/device.h"
#include "kyutai/io/params.h"
#include "kyutai/model/mimi_model.h"
#include "kyutai/model/torch_compat.h"
#include "kyutai/runtime.h"

namespace {

struct Options {
  std::string config;  // empty: the released Mimi configuration
  std::string device = "cpu";
  int threads = 0;
  int frames = 30;
  int warmup = 5;
  int codebooks = 8;
  int batch = 1;  // streams encoded and decoded together, [batch, 1, frame]
};

void usage() {
  std::fprintf(stderr,
               "usage: mimi-bench [--config mimi_config.json] [--threads N] [--frames N]\n"
               "                  [--warmup N] [--codebooks N] [--batch N] [--device cpu|cuda|cuda:N]\n");
}

bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) return false;
    const char* v = argv[++i];
    if (a == "--config")
      o.config = v;
    else if (a == "--threads")
      o.threads = std::atoi(v);
    else if (a == "--frames")
      o.frames = std::atoi(v);
    else if (a == "--warmup")
      o.warmup = std::atoi(v);
    else if (a == "--codebooks")
      o.codebooks = std::atoi(v);
    else if (a == "--batch")
      o.batch = std::atoi(v);
    else if (a == "--device")
      o.device = v;
    else
      return false;
  }
  return o.frames > 0 && o.warmup >= 0 && o.batch > 0;
}

// Wall time of f, including the device work it queued.
template <class F>
double time_ms(const at::Device& device, F&& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  kyutai::torch_compat::synchronize(device);
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// The bytes of every declared tensor: what a streaming frame reads, encoder and decoder.
double weight_bytes(const kyutai::MimiModel& model) {
  double bytes = 0;
  for (const kyutai::ParamSpec& p : model.params()) {
    double n = 1;
    for (int64_t d : p.shape) n *= static_cast<double>(d);
    bytes += n * static_cast<double>(c10::elementSize(p.dtype));
  }
  return bytes;
}

// The figures, the floor (CPU only) and the machine-readable last line.
void report(const Options& o, const kyutai::MimiModel& model, const std::vector<double>& enc_ms,
            const std::vector<double>& dec_ms, const std::vector<double>& floor_gbps) {
  const int64_t frame = model.frame_size();
  std::printf(
      "config: %s, %d frames of %lld samples after %d warm-up frames, %d codebooks, "
      "%d streams together, on %s\n",
      o.config.empty() ? "released Mimi (moshi_2024)" : o.config.c_str(), o.frames,
      static_cast<long long>(frame), o.warmup, o.codebooks, o.batch, o.device.c_str());
  std::printf("encode: median %.2f ms, max %.2f ms per frame\n", bench::median(enc_ms),
              *std::max_element(enc_ms.begin(), enc_ms.end()));
  std::printf("decode: median %.2f ms, max %.2f ms per frame\n", bench::median(dec_ms),
              *std::max_element(dec_ms.begin(), dec_ms.end()));
  if (!floor_gbps.empty())
    std::printf("floor: %.0f MB of weights a frame at %.1f GB/s (median of %zu reads): %.2f ms\n",
                weight_bytes(model) / 1e6, bench::median(floor_gbps), floor_gbps.size(),
                weight_bytes(model) / bench::median(floor_gbps) / 1e6);
  std::printf("mimi encode_ms=%.2f decode_ms=%.2f threads=%d device=%s batch=%d",
              bench::median(enc_ms), bench::median(dec_ms), kyutai::num_threads(),
              o.device.c_str(), o.batch);
  if (!floor_gbps.empty()) {
    const double floor_ms = weight_bytes(model) / bench::median(floor_gbps) / 1e6;
    std::printf(" floor_ms=%.2f gbps=%.1f frame_over_floor=%.2f", floor_ms,
                bench::median(floor_gbps),
                (bench::median(enc_ms) + bench::median(dec_ms)) / floor_ms);
  }
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse(argc, argv, o)) {
    usage();
    return 2;
  }
  try {
    kyutai::set_num_threads(o.threads);
    kyutai::check_device(o.device);
    const at::Device device(o.device);
    const kyutai::MimiConfig config = o.config.empty() ? kyutai::MimiConfig::moshi_2024()
                                                       : kyutai::MimiConfig::from_file(o.config);
    kyutai::MimiModel model(config);
    model.init_random(1234, device);
    c10::InferenceMode guard;
    const int64_t frame = model.frame_size();
    const int total = o.warmup + o.frames;
    at::Tensor audio = at::randn({o.batch, 1, frame * total}) * 0.1;

    std::vector<double> floor_gbps;
    if (device.is_cpu()) floor_gbps.push_back(bench::read_bandwidth(kyutai::num_threads()));
    kyutai::MimiEncoderState enc = model.new_encoder_state(o.codebooks);
    std::vector<at::Tensor> codes;
    std::vector<double> enc_ms, dec_ms;
    for (int f = 0; f < total; ++f) {
      const at::Tensor x = audio.narrow(2, f * frame, frame);
      const double ms = time_ms(device, [&] { codes.push_back(model.encode_step(x, enc)); });
      if (f >= o.warmup) enc_ms.push_back(ms);
    }
    kyutai::MimiDecoderState dec = model.new_decoder_state();
    for (int f = 0; f < total; ++f) {
      const double ms = time_ms(device, [&] { model.decode_step(codes[f], dec); });
      if (f >= o.warmup) dec_ms.push_back(ms);
    }
    if (device.is_cpu()) floor_gbps.push_back(bench::read_bandwidth(kyutai::num_threads()));
    report(o, model, enc_ms, dec_ms, floor_gbps);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mimi-bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
