// AVX2 + FMA + F16C vector traits for the kernel bodies (matmul_body.h), for CPUs without
// AVX-512: one 256-bit vector holds 8 float32 lanes, so a super-block's 16 groups are two parts
// of 8. Included only by units compiled with these flags; everything here has internal linkage
// (see kernel_table.h).
#pragma once

#if !defined(__AVX2__) || !defined(__FMA__) || !defined(__F16C__)
#error "simd_avx2.h belongs to a unit compiled with AVX2, FMA and F16C flags"
#endif

#include <immintrin.h>

#include <cstdint>

namespace kyutai::kernels::detail {
namespace {

struct Avx2 {
  using F = __m256;
  using I = __m256i;
  static constexpr int kLanes = 8;  // float32 lanes; also groups per part of a super-block

  static F zero() { return _mm256_setzero_ps(); }
  static F load(const float* p) { return _mm256_loadu_ps(p); }
  static I load_bytes(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
  static F add(F a, F b) { return _mm256_add_ps(a, b); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F set1(float v) { return _mm256_set1_ps(v); }
  static void store(float* p, F v) { _mm256_storeu_ps(p, v); }

  // Fixed-order horizontal sum.
  static float hsum(F v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }

  // Without vdpbf16ps: 8 bfloat16 values of each operand widened to float32 (exact) and FMA
  // (one rounding per product and sum instead of vdpbf16ps's one per pair; the products
  // themselves are exact either way).
  using Bf16Weight = __m256;
  static constexpr int kBf16Inputs = 8;  // inputs per dot_bf16
  static F widen_bf16(const uint16_t* p) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  static Bf16Weight load_bf16_weight(const uint16_t* w) { return widen_bf16(w); }
  static F dot_bf16(F acc, const uint16_t* x, Bf16Weight w) {
    return _mm256_fmadd_ps(widen_bf16(x), w, acc);
  }

  // float16 scales of kLanes consecutive groups, widened.
  static F load_scales(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static F to_float(I v) { return _mm256_cvtepi32_ps(v); }
  static I low_nibbles(I b) { return _mm256_and_si256(b, _mm256_set1_epi8(0x0f)); }
  static I high_nibbles(I b) { return low_nibbles(_mm256_srli_epi16(b, 4)); }

  // Per 32-bit lane (one group), the exact dot of the stored unsigned weights v[k] with x, with
  // vpmaddubsw + vpmaddwd. Int4's nibbles (0..15) go straight into vpmaddubsw and start from
  // -offset * sum(q(x)); Int8's q + 128 would saturate its 16-bit pair sums, so Int8 uses |q| and
  // x with q's sign instead (at most 2 * 127 * 127) and starts from 0.
  template <bool kInt4>
  static I dot_start(const int32_t* xbias) {
    return kInt4 ? load_bytes(xbias) : _mm256_setzero_si256();
  }
  // 16 vector registers: the rows of x take their dots one after the other (no dot_sub).
  static constexpr bool kRowsInterleaved = false;
  template <bool kInt4>
  static I dot_groups(I dot, const I v[8], const int8_t* xq) {
    const __m256i ones = _mm256_set1_epi16(1);
    if (kInt4) {
      // A pair sum is at most 2 * 15 * 128 = 3840 in magnitude, so the 8 sub-vectors' pair sums
      // add up exactly in 16 bits (at most 30720): one vpmaddwd per part instead of 8, which
      // leaves the multipliers to vpmaddubsw when several rows share the weights.
      __m256i pairs = _mm256_maddubs_epi16(v[0], load_bytes(xq));
      _Pragma("GCC unroll 8") for (int k = 1; k < 8; ++k) pairs =
          _mm256_add_epi16(pairs, _mm256_maddubs_epi16(v[k], load_bytes(xq + 64 * k)));
      return _mm256_add_epi32(dot, _mm256_madd_epi16(pairs, ones));
    }
    const __m256i bias = _mm256_set1_epi8(static_cast<char>(0x80));
    _Pragma("GCC unroll 8") for (int k = 0; k < 8; ++k) {
      const __m256i q = _mm256_xor_si256(v[k], bias);  // back to signed q
      const __m256i pairs =
          _mm256_maddubs_epi16(_mm256_abs_epi8(q), _mm256_sign_epi8(load_bytes(xq + 64 * k), q));
      dot = _mm256_add_epi32(dot, _mm256_madd_epi16(pairs, ones));
    }
    return dot;
  }
};

}  // namespace
}  // namespace kyutai::kernels::detail
