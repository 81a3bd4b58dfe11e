// libFuzzer target for the configuration parsers: any input must either give a configuration
// whose derived sizes compute without overflow, or raise a ConfigError; anything else (a crash,
// a sanitizer report such as a float-to-int overflow, another exception) is a bug.
#include <cstddef>
#include <cstdint>
#include <string>

#include "kyutai/config.h"
#include "kyutai/error.h"

namespace {

void use_lm(const kyutai::LmConfig& c) {
  volatile int64_t sink = c.max_delay() + 2 + c.num_codebooks() + c.user_codebooks();
  sink = sink + c.transformer.num_weight_sets() + c.depformer.num_weight_sets() +
         c.transformer.head_dim() + c.depformer.head_dim();
}

void use_mimi(const kyutai::MimiConfig& c) {
  volatile int64_t sink = c.frame_size() + c.resample_stride() + c.seanet.hop_length();
  sink = sink + c.transformer.head_dim() + static_cast<int64_t>(c.encoder_frame_rate());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    use_lm(kyutai::LmConfig::from_json(text, "fuzz-input"));
  } catch (const kyutai::ConfigError&) {
  }
  try {
    use_mimi(kyutai::MimiConfig::from_json(text, "fuzz-input"));
  } catch (const kyutai::ConfigError&) {
  }
  return 0;
}
