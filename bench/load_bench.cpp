// Load time and resident memory of an LM in one weight format, from a bfloat16 checkpoint (as
// Kyutai ships them), through the quantized-weights cache. Random weights: the first run writes
// the checkpoint if it is missing. Each run is one load in a fresh process:
//   load seconds=<s> cache=<miss|hit|none> weights=<w> rss_gb=<resident after the load>
#include <ATen/ATen.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "kyutai/model/lm.h"
#include "kyutai/runtime.h"

namespace {

double resident_gb() {
  std::ifstream statm("/proc/self/statm");
  long size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<double>(sysconf(_SC_PAGESIZE)) / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr,
                 "usage: lm-load-bench CONFIG CHECKPOINT WEIGHTS [CACHE_DIR]   (all cores)\n"
                 "  CHECKPOINT is written (bfloat16, random weights) when missing.\n");
    return 2;
  }
  const std::string config_path = argv[1], checkpoint = argv[2], cache_dir = argc > 4 ? argv[4] : "";
  try {
    kyutai::set_num_threads(0);
    const kyutai::LmConfig config = kyutai::LmConfig::from_file(config_path);
    if (!std::filesystem::exists(checkpoint)) {
      kyutai::LmModel random(config, kyutai::WeightFormat::BFloat16);
      random.init_random(1, at::kCPU);
      random.save(checkpoint);
      std::printf("wrote %s (%.1f GB)\n", checkpoint.c_str(),
                  std::filesystem::file_size(checkpoint) / 1e9);
      return 0;
    }
    const kyutai::WeightFormat format =
        kyutai::resolve_weight_format(kyutai::parse_weight_format(argv[3]), "cpu");
    kyutai::WeightCacheOptions cache;
    cache.dir = cache_dir;
    std::string outcome = "none";
    cache.info = [&](const std::string& m) {
      if (m.find("from the cache") != std::string::npos) outcome = "hit";
      if (m.find("written") != std::string::npos) outcome = "miss";
    };
    cache.warn = [](const std::string& m) { std::printf("warning: %s\n", m.c_str()); };
    kyutai::LmModel model(config, format);
    const auto t0 = std::chrono::steady_clock::now();
    model.load(checkpoint, at::kCPU, &cache);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("load seconds=%.1f cache=%s weights=%s rss_gb=%.2f\n", s, outcome.c_str(),
                kyutai::weight_format_name(format), resident_gb());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lm-load-bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
