// How a model's matrix weights are stored and multiplied: the one weight-format type and its
// traits table, which every layer reads (the kernels, the loader, the elements' `weights`
// property, the gateway's option). Torch-free.
//
// Adding a format is one row of kWeightFormats plus its kernels (kernels/, docs/QUANTIZATION.md).
#pragma once

#include <functional>
#include <string>

namespace kyutai {

// Float32 and BFloat16 keep the checkpoint's values (bfloat16 is how Kyutai ships them). Int8
// and Int4 are quantized at load time, in groups of 32 inputs with one float16 scale each
// (docs/QUANTIZATION.md). Auto is a choice, not a format: resolve_weight_format turns it into
// one for a device, and no weight is ever stored in it. The formats' values are stable: they
// seed the quantized-weights cache's file names (a new format goes before Auto).
enum class WeightFormat { Float32, BFloat16, Int8, Int4, Auto };

// How a conversation's KV cache stores keys and values: in the model's dtype (as the reference
// does), or in int8 with a float32 scale per head and position, half the bytes of bfloat16 that
// a long context reads at every step (its logit error: docs/QUANTIZATION.md). CPU only.
enum class KvCacheFormat { Model, Int8 };

struct WeightFormatTraits {
  WeightFormat format;
  const char* name;    // canonical: the GEnum nick, the cache files' tag, what messages say
  const char* alias;   // another accepted name (the `dtype` spellings), or null
  bool quantized;      // made at load time from the checkpoint, through the weights cache
  bool cpu_only;       // has only CPU kernels
  int value_bits;      // bits of one stored value (0 for Auto)
  int group_size;      // inputs sharing one float16 scale (0: no scales)
  double bytes_per_weight;  // value and scale bytes per weight of a packed [out, in] weight
  const char* description;  // one line, for gst-inspect and --help
};

// Bytes per weight of a format storing `bits` per value and one 2-byte scale per `group` inputs.
constexpr double weight_bytes(int bits, int group) {
  return bits / 8.0 + (group > 0 ? 2.0 / group : 0.0);
}

// One row per WeightFormat, in the enum's order.
inline constexpr WeightFormatTraits kWeightFormats[] = {
    {WeightFormat::Float32, "float32", "fp32", false, false, 32, 0, weight_bytes(32, 0),
     "the reference's numerics, twice bfloat16's memory"},
    {WeightFormat::BFloat16, "bfloat16", "bf16", false, false, 16, 0, weight_bytes(16, 0),
     "as Kyutai ships the weights"},
    {WeightFormat::Int8, "int8", nullptr, true, true, 8, 32, weight_bytes(8, 32),
     "Q8_0, quantized at load and cached; the fastest on a CPU for a small error"},
    {WeightFormat::Int4, "int4", nullptr, true, true, 4, 32, weight_bytes(4, 32),
     "Q4_0, quantized at load and cached; the smallest, with a larger error"},
    {WeightFormat::Auto, "auto", nullptr, false, false, 0, 0, 0.0,
     "bfloat16 on a GPU, int8 on a CPU"},
};
inline constexpr int kWeightFormatCount = sizeof(kWeightFormats) / sizeof(kWeightFormats[0]);

constexpr const WeightFormatTraits& weight_format_traits(WeightFormat format) {
  return kWeightFormats[static_cast<int>(format)];
}

// The canonical name: "float32", "bfloat16", "int8", "int4", "auto".
const char* weight_format_name(WeightFormat format);
// A canonical name or an alias; throws ConfigError listing the accepted names.
WeightFormat parse_weight_format(const std::string& name);
// The canonical names for messages: "float32, bfloat16, int8, int4 or auto".
std::string weight_format_choices();
// Auto for `device` ("cpu", "cuda", "cuda:N"): bfloat16 on a GPU, int8 on a CPU (where a step is
// bound by memory bandwidth: int8 reads a little over half of bfloat16's bytes, with a small
// round-trip error). Any other format is returned as it is.
WeightFormat resolve_weight_format(WeightFormat format, const std::string& device);

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
