// How a model's matrix weights are stored and multiplied. Torch-free.
#pragma once

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

}  // namespace kyutai
