#include "kyutai/api/lm_loading.h"

#include <ATen/ATen.h>

#include "kyutai/device.h"
#include "kyutai/error.h"

namespace kyutai {

namespace {

void check_tokenizer(const TextTokenizer* tokenizer, const LmConfig& config) {
  if (tokenizer && tokenizer->vocab_size() != config.text_card)
    throw ConfigError(tokenizer->path() + ": the text tokenizer has " +
                      std::to_string(tokenizer->vocab_size()) +
                      " pieces but the model's text_card is " + std::to_string(config.text_card));
}

}  // namespace

void require_kind(const LmConfig& config, const std::string& origin, LmKind kind) {
  const std::string where = origin.empty() ? "the Moshi 7B defaults (no config.json)" : origin;
  if (kind == LmKind::Moshi && config.is_stt())
    throw ConfigError(where +
                      ": model_type 'stt' is a speech-to-text model, with no depformer to "
                      "speak: load it with kyutai::Stt (kyutai/stt.h)");
  if (kind == LmKind::Stt && !config.is_stt())
    throw ConfigError(where + ": model_type '" + config.model_type +
                      "' is not a speech-to-text model (model_type 'stt'): load it with "
                      "kyutai::Moshi (kyutai/moshi.h)");
}

LoadedLm load_lm(const MoshiFiles& files, LmKind kind, const std::string& device,
                 WeightFormat weights, const WeightCacheOptions& cache,
                 const LoadProgress& progress) {
  check_device(device);
  // locate_moshi has parsed the config; it is not read again.
  require_kind(files.lm_config, files.config, kind);
  LoadedLm lm;
  lm.tokenizer = TextTokenizer::load(files.tokenizer);
  lm.model = std::make_unique<LmModel>(files.lm_config, resolve_weight_format(weights, device));
  check_tokenizer(lm.tokenizer.get(), lm.model->config());  // before reading gigabytes
  lm.model->load(files.weights, at::Device(device), &cache, progress);
  return lm;
}

std::string shared_lm_key(const MoshiFiles& files, const std::string& device,
                          WeightFormat weights) {
  const std::string format = weight_format_name(resolve_weight_format(weights, device));
  return canonical_path(files.weights) + '\n' + canonical_path(files.config) + '\n' +
         canonical_path(files.tokenizer) + '\n' + device + '\n' + format;
}

LoadedLm random_lm(const LmConfig& config, const std::string& origin, LmKind kind, uint64_t seed,
                   WeightFormat weights, const std::string& tokenizer) {
  require_kind(config, origin, kind);
  LoadedLm lm;
  lm.model = std::make_unique<LmModel>(config, resolve_weight_format(weights, "cpu"));
  lm.model->init_random(seed, at::kCPU);
  if (!tokenizer.empty()) lm.tokenizer = TextTokenizer::load(tokenizer);
  check_tokenizer(lm.tokenizer.get(), lm.model->config());
  return lm;
}

}  // namespace kyutai
