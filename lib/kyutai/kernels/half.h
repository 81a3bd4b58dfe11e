// Scalar float16 and bfloat16 conversions, exact and independent of the instruction set. Only
// the generic translation units include this (the per-ISA ones use cvtph instructions), so no
// inline function here is ever compiled with AVX-512 flags.
#pragma once

#include <cstdint>
#include <cstring>

namespace kyutai::kernels {

inline uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

inline float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

inline float bf16_to_float(uint16_t h) { return bits_float(static_cast<uint32_t>(h) << 16); }

// Round to nearest even, as torch's float -> bfloat16 conversion does; NaN stays NaN.
inline uint16_t float_to_bf16(float f) {
  uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

float half_to_float(uint16_t h);
// Round to nearest even; overflow gives infinity. Scales never overflow (see pack.cpp).
uint16_t float_to_half(float f);

}  // namespace kyutai::kernels
