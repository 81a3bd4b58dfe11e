// The lookups of the weight-format table (kyutai/weights.h). Torch-free, so the kernels and the
// gateway link it without libtorch.
#include <cstring>

#include "kyutai/error.h"
#include "kyutai/weights.h"

namespace kyutai {

namespace {

constexpr bool rows_in_enum_order() {
  for (int i = 0; i < kWeightFormatCount; ++i)
    if (static_cast<int>(kWeightFormats[i].format) != i) return false;
  return true;
}
static_assert(rows_in_enum_order(), "kWeightFormats must have one row per format, in order");
static_assert(kWeightFormatCount == static_cast<int>(WeightFormat::Auto) + 1,
              "Auto is the last row");

// "fp32 for float32, bf16 for bfloat16".
std::string aliases() {
  std::string out;
  for (const WeightFormatTraits& t : kWeightFormats) {
    if (!t.alias) continue;
    out += (out.empty() ? "" : ", ") + std::string(t.alias) + " for " + t.name;
  }
  return out;
}

}  // namespace

const char* weight_format_name(WeightFormat format) {
  return weight_format_traits(format).name;
}

WeightFormat parse_weight_format(const std::string& name) {
  for (const WeightFormatTraits& t : kWeightFormats)
    if (name == t.name || (t.alias && name == t.alias)) return t.format;
  throw ConfigError("the weight format must be " + weight_format_choices() + ", not '" + name +
                    "' (also accepted: " + aliases() + ")");
}

std::string weight_format_choices() {
  std::string out;
  for (int i = 0; i < kWeightFormatCount; ++i) {
    if (i > 0) out += i + 1 == kWeightFormatCount ? " or " : ", ";
    out += kWeightFormats[i].name;
  }
  return out;
}

WeightFormat resolve_weight_format(WeightFormat format, const std::string& device) {
  if (format != WeightFormat::Auto) return format;
  const bool gpu = device.compare(0, std::strlen("cuda"), "cuda") == 0;
  return gpu ? WeightFormat::BFloat16 : WeightFormat::Int8;
}

}  // namespace kyutai
