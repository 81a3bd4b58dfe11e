// How a model's matrix weights are stored and multiplied. Torch-free.
#pragma once

#include <functional>
#include <string>

namespace kyutai {

// Float32 and BFloat16 keep the checkpoint's values (bfloat16 is how Kyutai ships them). Int8
// and Int4 are quantized at load time, in groups of 32 inputs with one scale each
// (docs/QUANTIZATION.md): a quarter and an eighth of float32's bytes, and as much less time
// per step where a step is bound by memory bandwidth, as it is on a CPU.
enum class WeightFormat { Float32, BFloat16, Int8, Int4 };

// "float32", "bfloat16", "int8", "int4".
const char* weight_format_name(WeightFormat format);
// The inverse of weight_format_name; throws ConfigError naming the accepted values.
WeightFormat parse_weight_format(const std::string& name);

// The cache of weights quantized at load time (int8, int4): one safetensors file per source
// file and format, in the user's cache directory, never in the model repository. A file that is
// truncated, tampered with or made from another source is reported through `warn` and rebuilt.
struct WeightCacheOptions {
  bool enabled = true;
  std::string dir;                               // empty: default_weight_cache_dir()
  std::function<void(const std::string&)> warn;  // what was wrong with an existing cache file
  std::function<void(const std::string&)> info;  // which cache file was used or written
};

// $KYUTAI_CACHE_DIR, else $XDG_CACHE_HOME/gst-moshi, else ~/.cache/gst-moshi.
std::string default_weight_cache_dir();

}  // namespace kyutai
