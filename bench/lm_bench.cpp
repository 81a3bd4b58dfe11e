// Moshi LM benchmark on random weights: median milliseconds per LMGen step (greedy), split
// between the temporal transformer and the depformer, for one weight format and a starting
// position in the KV cache. The last line is machine-readable:
//   lm step_ms=<x> main_ms=<y> depformer_ms=<z> threads=<n> weights=<w> position=<p> gbps=<g>
// where gbps is the weight and KV-cache bytes one step reads, divided by the step time.
#include <ATen/ATen.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "kyutai/lm.h"
#include "kyutai/lm_generate.h"
#include "kyutai/runtime.h"

namespace {

struct Options {
  std::string config = KYUTAI_SOURCE_ROOT "/bench/configs/lm_mid_config.json";
  kyutai::WeightFormat weights = kyutai::WeightFormat::Float32;
  int threads = 0;
  int steps = 20;
  int warmup = 3;
  int64_t position = 0;
};

bool parse(int argc, char** argv, Options& o) {
  if (argc % 2 != 1) return false;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
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
    else
      return false;
  }
  return o.steps > 0 && o.position >= 0;
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

}  // namespace

int main(int argc, char** argv) {
  Options o;
  try {
    if (!parse(argc, argv, o)) throw std::invalid_argument("bad arguments");
  } catch (const std::exception&) {
    std::fprintf(stderr,
                 "usage: lm-bench [--config lm_config.json] [--weights float32|bfloat16|int8|int4]\n"
                 "                [--threads N] [--steps N] [--warmup N] [--position N]\n");
    return 2;
  }
  try {
    kyutai::set_num_threads(o.threads);
    const kyutai::LmConfig config = kyutai::LmConfig::from_file(o.config);
    kyutai::LmModel model(config, o.weights);
    const char* weights = kyutai::weight_format_name(o.weights);
    std::printf("config: %s, %.0f M parameters, %s weights\n", o.config.c_str(),
                kyutai::count_elements(model.params()) / 1e6, weights);
    const auto t_init = std::chrono::steady_clock::now();
    model.init_random(1234, at::kCPU);
    std::printf("random weights made and packed in %.1f s; %.2f GB of weights per step\n",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t_init).count(),
                model.step_weight_bytes() / 1e9);
    const kyutai::LmGen gen(model);
    kyutai::LmGenState state = gen.new_state(0);
    // The step runs with `position` steps already in its KV cache (their values do not matter
    // for speed).
    state.offset = o.position;
    state.transformer.offset = o.position;
    const kyutai::SamplingParams greedy{0.0, 0, 0.0, 0};
    std::vector<double> step_ms, main_ms, dep_ms;
    for (int s = 0; s < o.warmup + o.steps; ++s) {
      std::vector<int64_t> user(static_cast<size_t>(config.user_codebooks()), s % config.card);
      kyutai::LmStepTimes times;
      const auto t0 = std::chrono::steady_clock::now();
      gen.step(user, state, greedy, nullptr, &times);
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (s < o.warmup) continue;
      step_ms.push_back(ms);
      main_ms.push_back(times.main_ms);
      dep_ms.push_back(times.depformer_ms);
    }
    const double step = median(step_ms);
    const int64_t bytes = model.step_weight_bytes() + kv_bytes(model, o.position + o.warmup);
    std::printf("%d steps after %d warm-up steps: median %.1f ms, max %.1f ms per step; "
                "peak resident memory %.2f GB\n",
                o.steps, o.warmup, step, *std::max_element(step_ms.begin(), step_ms.end()),
                resident_gb());
    std::printf("lm step_ms=%.1f main_ms=%.1f depformer_ms=%.1f threads=%d weights=%s "
                "position=%lld gbps=%.1f\n",
                step, median(main_ms), median(dep_ms), kyutai::num_threads(), weights,
                static_cast<long long>(o.position), bytes / step / 1e6);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lm-bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
