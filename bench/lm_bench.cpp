// Moshi LM benchmark on random weights: median milliseconds per LMGen step (greedy), split
// between the temporal transformer and the depformer. The last line is machine-readable:
//   lm step_ms=<x> main_ms=<y> depformer_ms=<z> threads=<n> dtype=<d>
#include <ATen/ATen.h>

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
  std::string dtype = "float32";
  int threads = 0;
  int steps = 20;
  int warmup = 3;
};

bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--config")
      o.config = v;
    else if (a == "--dtype")
      o.dtype = v;
    else if (a == "--threads")
      o.threads = std::atoi(v.c_str());
    else if (a == "--steps")
      o.steps = std::atoi(v.c_str());
    else if (a == "--warmup")
      o.warmup = std::atoi(v.c_str());
    else
      return false;
  }
  return argc % 2 == 1 && o.steps > 0 && (o.dtype == "float32" || o.dtype == "bfloat16");
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse(argc, argv, o)) {
    std::fprintf(stderr,
                 "usage: lm-bench [--config lm_config.json] [--dtype float32|bfloat16]\n"
                 "                [--threads N] [--steps N] [--warmup N]\n");
    return 2;
  }
  try {
    kyutai::set_num_threads(o.threads);
    const kyutai::LmConfig config = kyutai::LmConfig::from_file(o.config);
    kyutai::LmModel model(config, o.dtype == "bfloat16" ? at::kBFloat16 : at::kFloat);
    std::printf("config: %s, %.0f M parameters, %s\n", o.config.c_str(),
                kyutai::count_elements(model.params()) / 1e6, o.dtype.c_str());
    model.init_random(1234, at::kCPU);
    const kyutai::LmGen gen(model);
    kyutai::LmGenState state = gen.new_state(0);
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
    std::printf("%d steps after %d warm-up steps: median %.1f ms, max %.1f ms per step\n", o.steps,
                o.warmup, median(step_ms), *std::max_element(step_ms.begin(), step_ms.end()));
    std::printf("lm step_ms=%.1f main_ms=%.1f depformer_ms=%.1f threads=%d dtype=%s\n",
                median(step_ms), median(main_ms), median(dep_ms), kyutai::num_threads(),
                o.dtype.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lm-bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
