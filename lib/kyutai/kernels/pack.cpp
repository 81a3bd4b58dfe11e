// Weight packing: float16 conversion, the quantization schemes (docs/QUANTIZATION.md) and
// PackedWeight's storage. Scalar code: packing runs once per model load, and its results must
// not depend on the instruction set.

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "kyutai/error.h"
#include "kyutai/kernels/half.h"
#include "kyutai/kernels/huge_pages.h"
#include "kyutai/kernels/kernel_table.h"
#include "kyutai/kernels/kernels.h"
#include "kyutai/kernels/thread_pool.h"

namespace kyutai::kernels {

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  if (exp == 0x1f) return bits_float(sign | 0x7f800000u | (man << 13));
  if (exp != 0) return bits_float(sign | ((exp + 112) << 23) | (man << 13));
  const float sub = std::ldexp(static_cast<float>(man), -24);  // subnormal or zero
  return sign ? -sub : sub;
}

uint16_t float_to_half(float f) {
  const uint32_t u = float_bits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const float a = std::fabs(f);
  if (std::isnan(f)) return sign | 0x7e00u;
  if (a >= 65520.0f) return sign | 0x7c00u;  // rounds to infinity
  if (a < 6.103515625e-05f) {
    // Subnormal: multiples of 2^-24; nearbyint rounds half to even.
    return sign | static_cast<uint16_t>(std::nearbyint(std::ldexp(a, 24)));
  }
  const uint32_t ua = float_bits(a);
  uint32_t r = ua + 0xfffu + ((ua >> 13) & 1u);  // round the 13 dropped bits to nearest even
  return sign | static_cast<uint16_t>(((r >> 23) - 112) << 10 | ((r >> 13) & 0x3ffu));
}

int64_t padded_inputs(WeightFormat format, int64_t in) {
  const int64_t unit = weight_format_traits(format).quantized ? kSuperBlock : kGroup;
  return (in + unit - 1) / unit * unit;
}

int64_t PackedWeight::bytes_per_row() const {
  return weight_format_traits(format).value_bits * in_padded / 8;
}

size_t PackedWeight::scale_count() const {
  const int group = weight_format_traits(format).group_size;
  return group > 0 ? static_cast<size_t>(out * (in_padded / group)) : 0;
}

namespace {

// A weight's shape and format, without arrays.
PackedWeight empty_weight(WeightFormat format, int64_t out, int64_t in) {
  if (format == WeightFormat::Auto)
    throw ConfigError("kernels: the weight format 'auto' must be resolved before packing");
  if (out < 1 || in < 1)
    throw ConfigError("kernels: a product weight must not be empty, not [" + std::to_string(out) +
                      ", " + std::to_string(in) + "]");
  PackedWeight w;
  w.format = format;
  w.out = out;
  w.in = in;
  w.in_padded = padded_inputs(format, in);
  return w;
}

}  // namespace

PackedWeight PackedWeight::view(WeightFormat format, int64_t out, int64_t in, const void* data,
                                const uint16_t* scales, std::shared_ptr<const void> owner) {
  PackedWeight w = empty_weight(format, out, in);
  w.data = static_cast<const uint8_t*>(data);
  w.scales = scales;
  w.owner = std::move(owner);
  if (data == nullptr || (w.scale_count() > 0 && scales == nullptr))
    throw Error(std::string("kernels: a view of ") + weight_format_name(format) +
                " weights without its arrays");
  return w;
}

namespace detail {

int64_t interleaved_index(int64_t c) {
  const int64_t sb = c / 512, g = (c % 512) / 32, e = c % 32;
  return sb * 512 + (e / 4) * 64 + g * 4 + (e % 4);
}

}  // namespace detail

namespace {

// Quantizes with the stored (float16-rounded) scale, so that d * q is what the kernels use.
float stored_scale(float d, uint16_t* bits) {
  *bits = float_to_half(d);
  return half_to_float(*bits);
}

int quantize(float w, float inv_d, int lo, int hi) {
  const float q = std::nearbyint(w * inv_d);
  return static_cast<int>(std::min<float>(hi, std::max<float>(lo, q)));
}

// Q8_0: d = max|w| / 127, q = round(w / d) in [-127, 127], stored as q + 128.
void quantize_group_int8(const float* w, uint8_t* q, uint16_t* scale) {
  float amax = 0.0f;
  for (int i = 0; i < kGroup; ++i) amax = std::max(amax, std::fabs(w[i]));
  const float d = stored_scale(amax / 127.0f, scale);
  const float inv_d = d != 0.0f ? 1.0f / d : 0.0f;
  for (int i = 0; i < kGroup; ++i) q[i] = static_cast<uint8_t>(quantize(w[i], inv_d, -127, 127) + 128);
}

// Q4_0: m = the value of largest magnitude, d = m / -8, q = round(w / d) + 8 in [0, 15], so
// that m is exactly -8 d and the other side of zero reaches at most 7 d.
void quantize_group_int4(const float* w, uint8_t* q, uint16_t* scale) {
  float m = 0.0f;
  for (int i = 0; i < kGroup; ++i)
    if (std::fabs(w[i]) > std::fabs(m)) m = w[i];
  const float d = stored_scale(m / -8.0f, scale);
  const float inv_d = d != 0.0f ? 1.0f / d : 0.0f;
  for (int i = 0; i < kGroup; ++i) q[i] = static_cast<uint8_t>(quantize(w[i], inv_d, -8, 7) + 8);
}

// Places the values of one quantized row ([in_padded], logical order) at their interleaved
// positions: bytes for Int8, nibbles for Int4 (sub-vectors 2j and 2j + 1 of a super-block share
// the 64 bytes j, low and high nibble).
void store_row(WeightFormat format, const uint8_t* q, int64_t in_padded, uint8_t* dst) {
  for (int64_t c = 0; c < in_padded; ++c) {
    const int64_t p = detail::interleaved_index(c);
    if (format == WeightFormat::Int8) {
      dst[p] = q[c];
      continue;
    }
    const int64_t sb = p / 512, k = (p % 512) / 64;
    uint8_t& byte = dst[sb * 256 + (k / 2) * 64 + p % 64];
    byte = (k % 2) ? static_cast<uint8_t>((byte & 0x0f) | (q[c] << 4))
                   : static_cast<uint8_t>((byte & 0xf0) | q[c]);
  }
}

// Packs one row given as float32 [in_padded] (zeros past `in`).
void pack_row(const PackedWeight& w, const float* row, uint8_t* dst, uint16_t* scales,
              std::vector<uint8_t>& q) {
  switch (w.format) {
    case WeightFormat::Float32:
      std::memcpy(dst, row, 4 * w.in_padded);
      return;
    case WeightFormat::BFloat16: {
      auto* out = reinterpret_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < w.in_padded; ++i) out[i] = float_to_bf16(row[i]);
      return;
    }
    case WeightFormat::Int8:
    case WeightFormat::Int4:
      q.resize(w.in_padded);
      for (int64_t g = 0; g < w.in_padded / kGroup; ++g) {
        auto* group = q.data() + g * kGroup;
        if (w.format == WeightFormat::Int8) quantize_group_int8(row + g * kGroup, group, scales + g);
        else quantize_group_int4(row + g * kGroup, group, scales + g);
      }
      store_row(w.format, q.data(), w.in_padded, dst);
      return;
    case WeightFormat::Auto:  // refused by empty_weight
      return;
  }
}

// Allocates the arrays of a weight (64-byte aligned, zeroed) and fills them row by row, in
// parallel; row_source(o, dst) writes row o as float32 [in] into dst.
PackedWeight pack_rows(WeightFormat format, int64_t out, int64_t in,
                       const std::function<void(int64_t, float*)>& row_source) {
  PackedWeight w = empty_weight(format, out, in);
  const size_t data_bytes = (w.data_bytes() + 63) / 64 * 64;
  const size_t bytes = data_bytes + 2 * w.scale_count();
  void* mem = allocate_streamed(bytes);
  std::memset(mem, 0, bytes);
  w.owner = std::shared_ptr<void>(mem, std::free);
  auto* data = static_cast<uint8_t*>(mem);
  auto* scales = reinterpret_cast<uint16_t*>(data + data_bytes);
  w.data = data;
  w.scales = w.scale_count() > 0 ? scales : nullptr;
  const int64_t groups = w.in_padded / kGroup;
  parallel_ranges(out, num_threads(), [&](int64_t o0, int64_t o1) {
    std::vector<float> row(w.in_padded, 0.0f);
    std::vector<uint8_t> q;
    for (int64_t o = o0; o < o1; ++o) {
      row_source(o, row.data());
      pack_row(w, row.data(), data + o * w.bytes_per_row(), scales + o * groups, q);
    }
  });
  return w;
}

}  // namespace

PackedWeight pack(WeightFormat format, const float* w, int64_t out, int64_t in) {
  return pack_rows(format, out, in, [&](int64_t o, float* row) {
    std::memcpy(row, w + o * in, sizeof(float) * in);
  });
}

PackedWeight pack_bf16(WeightFormat format, const uint16_t* w, int64_t out, int64_t in) {
  // bfloat16 -> float32 -> bfloat16 is exact, so BFloat16 keeps the checkpoint's bits.
  return pack_rows(format, out, in, [&](int64_t o, float* row) {
    for (int64_t i = 0; i < in; ++i) row[i] = bf16_to_float(w[o * in + i]);
  });
}

void dequantize_row(const PackedWeight& w, int64_t o, double* out) {
  const uint8_t* row = w.data + o * w.bytes_per_row();
  for (int64_t c = 0; c < w.in; ++c) {
    const int64_t p = detail::interleaved_index(c);
    switch (w.format) {
      case WeightFormat::Float32:
        out[c] = reinterpret_cast<const float*>(row)[c];
        break;
      case WeightFormat::BFloat16:
        out[c] = bf16_to_float(reinterpret_cast<const uint16_t*>(row)[c]);
        break;
      case WeightFormat::Int8:
      case WeightFormat::Int4: {
        const double d = half_to_float(w.scales[o * (w.in_padded / kGroup) + c / kGroup]);
        if (w.format == WeightFormat::Int8) {
          out[c] = d * (static_cast<int>(row[p]) - 128);
        } else {
          const int64_t k = (p % 512) / 64;
          const uint8_t byte = row[(p / 512) * 256 + (k / 2) * 64 + p % 64];
          out[c] = d * (((k % 2) ? byte >> 4 : byte & 0x0f) - 8);
        }
        break;
      }
      case WeightFormat::Auto:  // refused by empty_weight
        break;
    }
  }
}

}  // namespace kyutai::kernels
