// AVX-512 (F, BW, VL, VNNI, BF16) vector traits for the kernel bodies (matmul_body.h): one
// 512-bit vector holds 16 float32 lanes, 32 bfloat16 inputs, or one 32-bit lane per group of a
// super-block (16 groups). Included only by units compiled with these flags; everything here has
// internal linkage (see kernel_table.h).
#pragma once

#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512VNNI__) || \
    !defined(__AVX512BF16__)
#error "simd_avx512.h belongs to a unit compiled with AVX-512 F/BW/VNNI/BF16 flags"
#endif

// GCC 12's _mm512_reduce_*_ps fill _mm512_extractf64x4_pd's operand with an undefined value
// (`__Y = __Y`), which -Wuninitialized reports wherever they are inlined; the warning is about
// the header, not this code.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <cstdint>

namespace kyutai::kernels::detail {
namespace {

struct Avx512 {
  using F = __m512;
  using I = __m512i;
  static constexpr int kLanes = 16;  // float32 lanes; also groups per part of a super-block

  static F zero() { return _mm512_setzero_ps(); }
  static F load(const float* p) { return _mm512_loadu_ps(p); }
  static I load_bytes(const void* p) { return _mm512_loadu_si512(p); }
  static F add(F a, F b) { return _mm512_add_ps(a, b); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static F set1(float v) { return _mm512_set1_ps(v); }
  static void store(float* p, F v) { _mm512_storeu_ps(p, v); }
  static float hsum(F v) { return _mm512_reduce_add_ps(v); }

  // bfloat16 products with vdpbf16ps: each float32 lane adds two bfloat16 products, exact in
  // float32, rounding once per addition, as oneDNN's bfloat16 products (PyTorch's on CPU) do.
  // A weight operand is 32 raw bfloat16 values.
  using Bf16Weight = __m512i;
  static constexpr int kBf16Inputs = 32;  // inputs per dot_bf16
  static Bf16Weight load_bf16_weight(const uint16_t* w) { return _mm512_loadu_si512(w); }
  static F dot_bf16(F acc, const uint16_t* x, Bf16Weight w) {
    return _mm512_dpbf16_ps(acc, (__m512bh)_mm512_loadu_si512(x), (__m512bh)w);
  }

  // float16 scales of kLanes consecutive groups, widened.
  static F load_scales(const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static F to_float(I v) { return _mm512_cvtepi32_ps(v); }
  static I low_nibbles(I b) { return _mm512_and_si512(b, _mm512_set1_epi8(0x0f)); }
  static I high_nibbles(I b) { return low_nibbles(_mm512_srli_epi16(b, 4)); }

  // Per 32-bit lane (one group), the exact dot of the stored unsigned weights v[k] (q + offset)
  // with x, added to the start value -offset * sum(q(x)): one vpdpbusd per sub-vector.
  template <bool kInt4>
  static I dot_start(const int32_t* xbias) {
    return _mm512_loadu_si512(xbias);
  }
  template <bool kInt4>
  static I dot_sub(I dot, I v, const int8_t* xq) {
    return _mm512_dpbusd_epi32(dot, v, _mm512_loadu_si512(xq));
  }
  template <bool kInt4>
  static I dot_groups(I dot, const I v[8], const int8_t* xq) {
    _Pragma("GCC unroll 8") for (int k = 0; k < 8; ++k) dot =
        dot_sub<kInt4>(dot, v[k], xq + 64 * k);
    return dot;
  }
  // 32 vector registers: two weight sub-vectors at a time, and per row of x a dot and an
  // accumulator, fit for 8 rows.
  static constexpr bool kRowsInterleaved = true;
};

}  // namespace
}  // namespace kyutai::kernels::detail
