// Internal: making the LM and its tokenizer behind the public model objects, Moshi (moshi.h)
// and Stt (stt.h), which share one checkpoint format and differ by config.json's model_type.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "kyutai/hub.h"
#include "kyutai/model/lm.h"
#include "kyutai/progress.h"
#include "kyutai/text.h"
#include "kyutai/weights.h"

namespace kyutai {

enum class LmKind { Moshi, Stt };

struct LoadedLm {
  std::unique_ptr<LmModel> model;
  std::shared_ptr<const TextTokenizer> tokenizer;  // null for random weights without one
};

// Throws ConfigError, naming `origin` and the class to use instead, when `config` is not a
// model of `kind`.
void require_kind(const LmConfig& config, const std::string& origin, LmKind kind);

// As Moshi::load, for a model of `kind`: the kind and the tokenizer's size are checked before
// any weight is read.
LoadedLm load_lm(const MoshiFiles& files, LmKind kind, const std::string& device,
                 WeightFormat weights, const WeightCacheOptions& cache,
                 const LoadProgress& progress);

// The key of a loaded LM in the process-wide cache (shared_cache.h): the files, the device and
// the resolved format, so that "auto" and what it stands for share one copy.
std::string shared_lm_key(const MoshiFiles& files, const std::string& device, WeightFormat weights);

// Random weights on the CPU for `config` (read from `origin`); `tokenizer` may be empty.
LoadedLm random_lm(const LmConfig& config, const std::string& origin, LmKind kind, uint64_t seed,
                   WeightFormat weights, const std::string& tokenizer);

}  // namespace kyutai
