// Moshi LM benchmark on random weights: median milliseconds per LMGen step (greedy), split
// between the temporal transformer and the depformer, for one weight format and a starting
// position in the KV cache. The last line is machine-readable:
//   lm step_ms=<x> main_ms=<y> depformer_ms=<z> threads=<n> weights=<w> position=<p> gbps=<g>
//      batch=<b> device=<d>
// where gbps is the weight and KV-cache bytes one step reads, divided by the step time. With
// --batch B, each step is one LmGen::step_batch over B conversations (each with its own KV
// cache, all at the same position), and gbps counts the weights once and B KV caches. With
// --with-mimi, each timed frame is a whole conversation frame on the real shapes: Mimi encodes
// 80 ms of audio, the LM steps, Mimi decodes Moshi's codes (Mimi on the CPU whatever --device
// says); the last line is then
//   conversation frame_ms=<x> rtf=<x/80> weights=<w> threads=<n>
#include <ATen/ATen.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kyutai/device.h"
#include "kyutai/lm.h"
#include "kyutai/lm_generate.h"
#include "kyutai/mimi.h"
#include "kyutai/runtime.h"
#include "kyutai/torch_compat.h"

namespace {

struct Options {
  std::string config = KYUTAI_SOURCE_ROOT "/bench/configs/lm_mid_config.json";
  kyutai::WeightFormat weights = kyutai::WeightFormat::Float32;
  std::string device = "cpu";
  int threads = 0;
  int steps = 20;
  int warmup = 3;
  int64_t position = 0;
  bool with_mimi = false;
  int batch = 1;
};

bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--with-mimi") {
      o.with_mimi = true;
      continue;
    }
    if (i + 1 >= argc) return false;
    const std::string v = argv[++i];
    if (a == "--config")
      o.config = v;
    else if (a == "--weights" || a == "--dtype")
      o.weights = kyutai::parse_weight_format(v);
    else if (a == "--threads")
      o.threads = std::atoi(v.c_str());
    else if (a == "--steps")
      o.steps = std::atoi(v.c_str());
    else if (a == "--warmup")
      o.warmup = std::atoi(v.c_str());
    else if (a == "--position")
      o.position = std::atoll(v.c_str());
    else if (a == "--batch")
      o.batch = std::atoi(v.c_str());
    else if (a == "--device")
      o.device = v;
    else
      return false;
  }
  // Mimi runs one conversation: --with-mimi times batch 1 only.
  return o.steps > 0 && o.position >= 0 && o.batch > 0 && (o.batch == 1 || !o.with_mimi);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double resident_gb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1e6;  // kilobytes -> GB
}

// KV-cache bytes the temporal transformer reads in a step at `position`.
int64_t kv_bytes(const kyutai::LmModel& model, int64_t position) {
  const kyutai::TransformerConfig& t = model.config().transformer;
  const int64_t keys = std::min<int64_t>(position + 1, t.context.value_or(position + 1));
  return 2 * t.num_layers * keys * t.d_model * static_cast<int64_t>(at::elementSize(model.dtype()));
}

// Mimi around the LM, on random weights of the released configuration: the user's side is
// encoded (its codes replace the benchmark's), Moshi's codes are decoded.
class Conversation {
 public:
  explicit Conversation(const kyutai::LmConfig& lm)
      : mimi_(kyutai::Mimi::random("", 77)),
        encoder_(mimi_, std::max(lm.dep_q, lm.user_codebooks())),
        decoder_(mimi_),
        pcm_(static_cast<size_t>(mimi_->format().frame_size)),
        codes_(static_cast<size_t>(encoder_.num_codebooks())),
        card_(lm.card) {}
  void encode(int frame, std::vector<int64_t>& user) {
    for (size_t i = 0; i < pcm_.size(); ++i) pcm_[i] = 0.1f * std::sin(0.05f * (frame * 1920 + i));
    encoder_.encode_frame(pcm_.data(), pcm_.size(), codes_.data());
    // A small test configuration may have fewer codes than Mimi's 2048.
    for (size_t k = 0; k < user.size(); ++k) user[k] = codes_[k] % card_;
  }
  void decode(const std::optional<std::vector<int64_t>>& tokens) {
    // Before Moshi's first frame (max_delay steps) the decoder still runs, on silence codes.
    std::vector<int64_t> audio(codes_.size() / 2 + 1, 0);
    if (tokens) audio.assign(tokens->begin() + 1, tokens->end());
    decoder_.decode_frame(audio.data(), static_cast<int>(audio.size()), pcm_.data());
  }

 private:
  std::shared_ptr<const kyutai::Mimi> mimi_;
  kyutai::MimiEncoder encoder_;
  kyutai::MimiDecoder decoder_;
  std::vector<float> pcm_;
  std::vector<int64_t> codes_;
  int64_t card_;
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  try {
    if (!parse(argc, argv, o)) throw std::invalid_argument("bad arguments");
  } catch (const std::exception&) {
    std::fprintf(
        stderr,
        "usage: lm-bench [--config lm_config.json] [--weights float32|bfloat16|int8|int4]\n"
        "                [--threads N] [--steps N] [--warmup N] [--position N]\n"
        "                [--batch N | --with-mimi] [--device cpu|cuda|cuda:N]\n");
    return 2;
  }
  try {
    kyutai::set_num_threads(o.threads);
    kyutai::check_device(o.device);
    const at::Device device(o.device);
    const kyutai::LmConfig config = kyutai::LmConfig::from_file(o.config);
    kyutai::LmModel model(config, o.weights);
    const char* weights = kyutai::weight_format_name(o.weights);
    std::printf("config: %s, %.0f M parameters, %s weights\n", o.config.c_str(),
                kyutai::count_elements(model.params()) / 1e6, weights);
    const auto t_init = std::chrono::steady_clock::now();
    model.init_random(1234, device);
    kyutai::torch_compat::synchronize(device);
    std::printf("random weights made and packed in %.1f s; %.2f GB of weights per step\n",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t_init).count(),
                model.step_weight_bytes() / 1e9);
    const kyutai::LmGen gen(model);
    std::vector<kyutai::LmGenState> states;
    for (int b = 0; b < o.batch; ++b) {
      states.push_back(gen.new_state(static_cast<uint64_t>(b)));
      // The step runs with `position` steps already in the temporal transformer's KV cache
      // (their values do not matter for speed; the token delays need no history).
      states.back().transformer.offset = o.position;
      for (auto& layer : states.back().transformer.layers) {
        layer.keys.zero_();
        layer.values.zero_();
      }
    }
    const kyutai::SamplingParams greedy{0.0, 0, 0.0, 0};
    std::vector<double> step_ms, main_ms, dep_ms;
    std::unique_ptr<Conversation> mimi;
    if (o.with_mimi) mimi = std::make_unique<Conversation>(config);
    std::vector<double> frame_ms;
    for (int s = 0; s < o.warmup + o.steps; ++s) {
      std::vector<std::vector<int64_t>> user;
      for (int b = 0; b < o.batch; ++b)
        user.emplace_back(static_cast<size_t>(config.user_codebooks()), (s + b) % config.card);
      kyutai::LmStepTimes times;
      const auto t0 = std::chrono::steady_clock::now();
      if (mimi) mimi->encode(s, user[0]);
      const auto t1 = std::chrono::steady_clock::now();
      std::vector<kyutai::LmGenRow> rows(static_cast<size_t>(o.batch));
      for (int b = 0; b < o.batch; ++b) {
        rows[b].user_codes = &user[b];
        rows[b].state = &states[b];
        rows[b].params = &greedy;
      }
      gen.step_batch(rows, &times);
      for (const auto& row : rows)
        if (row.error) std::rethrow_exception(row.error);
      kyutai::torch_compat::synchronize(device);  // sampling read the logits back already
      const auto t2 = std::chrono::steady_clock::now();
      if (mimi) mimi->decode(rows[0].result);
      const auto t3 = std::chrono::steady_clock::now();
      if (s >= o.warmup)
        frame_ms.push_back(std::chrono::duration<double, std::milli>(t3 - t0).count());
      const double ms = std::chrono::duration<double, std::milli>(t2 - t1).count();
      if (s < o.warmup) continue;
      step_ms.push_back(ms);
      main_ms.push_back(times.main_ms);
      dep_ms.push_back(times.depformer_ms);
    }
    const double step = median(step_ms);
    const int64_t bytes =
        model.step_weight_bytes() + o.batch * kv_bytes(model, o.position + o.warmup);
    std::printf(
        "%d steps after %d warm-up steps: median %.1f ms, max %.1f ms per step; "
        "peak resident memory %.2f GB\n",
        o.steps, o.warmup, step, *std::max_element(step_ms.begin(), step_ms.end()), resident_gb());
    std::printf(
        "lm step_ms=%.1f main_ms=%.1f depformer_ms=%.1f threads=%d weights=%s "
        "position=%lld gbps=%.1f batch=%d device=%s\n",
        step, median(main_ms), median(dep_ms), kyutai::num_threads(), weights,
        static_cast<long long>(o.position), bytes / step / 1e6, o.batch, o.device.c_str());
    if (mimi) {
      const double frame = median(frame_ms);
      std::printf("conversation frame_ms=%.1f rtf=%.3f weights=%s threads=%d\n", frame,
                  frame / 80.0, weights, kyutai::num_threads());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lm-bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
